// Renders the mixin's Grafana dashboards, one file each:
//   jsonnet -S -m dashboards/ mixin/dashboards.jsonnet
function(mixin=import 'mixin.libsonnet')
  { [file]: std.manifestJsonEx(mixin.grafanaDashboards[file], '  ') + '\n' for file in std.objectFields(mixin.grafanaDashboards) }
