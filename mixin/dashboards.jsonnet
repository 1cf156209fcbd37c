// Renders the mixin's Grafana dashboards, one file each:   jsonnet -m dashboards/ mixin/dashboards.jsonnet
function(mixin=import 'mixin.libsonnet') mixin.grafanaDashboards
