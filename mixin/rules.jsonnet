// The mixin's recording rules and alerts as one Prometheus rule file, in JSON (which Prometheus and
// promtool read as YAML):   jsonnet mixin/rules.jsonnet > memleak.rules.json
// alerts/make_rules.py writes the same as YAML to alerts/rules/memleak.rules.yml.
function(mixin=import 'mixin.libsonnet')
  { groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups }
