// The mixin's _config knobs that are not generated with the rules or the dashboards.
{
  _config+:: {
    // Label matchers that select the exporter's series, e.g. 'job="memleak-exporter"'. Empty selects every
    // memleak_* series, which is right when one job scrapes the exporters.
    memleakSelector: '',
    // The selector as the generated expressions splice it: `name{sel}`, or after the other matchers.
    memleakSelectorBraces: if self.memleakSelector == '' then '' else '{%s}' % self.memleakSelector,
    memleakSelectorAppended: if self.memleakSelector == '' then '' else ', %s' % self.memleakSelector,
  },
}
