// Shared pieces of the two dashboards, on Grafana's Foundation SDK builders: the data source
// and variables every dashboard has, and one factory per panel kind with the look both
// dashboards share, so a panel is written as what differs (title, query, unit, colours).
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';

/** Every panel and query reads the data source the user picks in the `datasource` variable. */
export const DS = { type: 'prometheus', uid: '${datasource}' } as const;

/** The selector filter every query carries, so the job and host pickers apply everywhere. */
export const FILTER = '{job=~"$job",instance=~"$instance"}';

/** `metric{job=~"$job",instance=~"$instance"}`. */
export function sel(metric: string): string {
  return `${metric}${FILTER}`;
}

// ---------------------------------------------------------------------------------------------
// Variables, links, annotations

/** `datasource`, `job` and `instance` (labelled "Host"); `multi` for the fleet, single for a host. */
export function standardVariables(multi: boolean): cog.Builder<dashboard.VariableModel>[] {
  const ds = new dashboard.DatasourceVariableBuilder('datasource')
    .label('Data source')
    .type('prometheus')
    .hide(dashboard.VariableHide.DontHide)
    .regex('');
  const query = (name: string, label: string, q: string) =>
    new dashboard.QueryVariableBuilder(name)
      .label(label)
      .datasource(DS)
      .definition(q)
      // Grafana's Prometheus variable editor stores the query as an object with this refId.
      .query({ query: q, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
      .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
      .regex('')
      .sort(dashboard.VariableSort.AlphabeticalAsc)
      .multi(multi)
      .includeAll(multi)
      .hide(dashboard.VariableHide.DontHide)
      .options([]);
  return [
    ds,
    query('job', 'Job', 'label_values(nixos_desync_build_info, job)'),
    query('instance', 'Host', 'label_values(up{job=~"$job"}, instance)'),
  ];
}

/** Grafana's own "Annotations & Alerts" query, as Grafana writes it into every dashboard. */
export function builtInAnnotations(): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .builtIn(1)
    .datasource({ type: 'grafana', uid: '-- Grafana --' })
    .enable(true)
    .hide(true)
    .iconColor('rgba(0, 211, 255, 1)')
    .name('Annotations & Alerts')
    .type('dashboard');
}

/** A link in the dashboard's header to the other dashboard, keeping data source and job. */
export function dashboardLink(title: string, uid: string): dashboard.DashboardLinkBuilder {
  return new dashboard.DashboardLinkBuilder(title)
    .type(dashboard.DashboardLinkType.Link)
    .url(`/d/${uid}?\${datasource:queryparam}&\${job:queryparam}`)
    .icon('dashboard')
    .targetBlank(false)
    .includeVars(false)
    .keepTime(true)
    .tags([])
    .asDropdown(false)
    .tooltip('');
}

/** The dashboard settings both dashboards share. */
export function baseDashboard(o: { uid: string; title: string; description: string; multi: boolean }): dashboard.DashboardBuilder {
  const d = new dashboard.DashboardBuilder(o.title)
    .uid(o.uid)
    .description(o.description)
    .tags(['nixos-desync', 'nixos'])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .version(1)
    .time({ from: 'now-7d', to: 'now' })
    .timezone('')
    .refresh('1m')
    .fiscalYearStartMonth(0)
    .liveNow(false)
    .weekStart('')
    .annotation(builtInAnnotations());
  for (const v of standardVariables(o.multi)) d.withVariable(v);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Queries

/** An instant query (stat panels, tables, bar gauges). */
export function instant(refId: string, expr: string, o: { table?: boolean; legend?: string } = {}): prometheus.DataqueryBuilder {
  const q = new prometheus.DataqueryBuilder()
    .datasource(DS)
    .refId(refId)
    .expr(expr)
    .editorMode(prometheus.QueryEditorMode.Code)
    .instant();
  if (o.legend !== undefined) q.legendFormat(o.legend);
  if (o.table) q.format(prometheus.PromQueryFormat.Table);
  return q;
}

/** A range query for a time series, one series per `legend`. */
export function range(refId: string, expr: string, legend: string): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder()
    .datasource(DS)
    .refId(refId)
    .expr(expr)
    .editorMode(prometheus.QueryEditorMode.Code)
    .legendFormat(legend)
    .range();
}

// ---------------------------------------------------------------------------------------------
// Field configuration

export type Step = [color: string, from: number | null];

/** Absolute thresholds from `[color, from]` steps; the first step starts at null (-∞). */
export function thresholds(...steps: Step[]): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.map(([color, value]) => ({ color, value })));
}

/** Value mapping of a 0/1 gauge to two words with colours (`color` may be omitted). */
export function boolMapping(
  zero: { text: string; color?: string; index: number },
  one: { text: string; color?: string; index: number },
): dashboard.ValueMapping[] {
  return [{ type: dashboard.MappingType.ValueToText, options: { '0': zero, '1': one } }];
}

/** The usual "no (green) / yes (red)" mapping of a 0/1 gauge. */
export const NO_YES: dashboard.ValueMapping[] = boolMapping(
  { text: 'no', color: 'green', index: 0 },
  { text: 'yes', color: 'red', index: 1 },
);

/** "failed (red) / success (green)" of a 0/1 success gauge (last run, upgrade unit). */
export const FAILED_SUCCESS: dashboard.ValueMapping[] = boolMapping(
  { text: 'failed', color: 'red', index: 1 },
  { text: 'success', color: 'green', index: 0 },
);

/** 0 is fine, 1 (or more) is yellow: reboot/activation pending, desyncs behind. */
export const OK_YELLOW: Step[] = [['green', null], ['yellow', 1]];
/** Seconds since the last successful run: NixosDesyncUpgradeStale fires after 3 days; orange from a day and a half. */
export const STALE: Step[] = [['green', null], ['orange', 129600], ['red', 259200]];
/** Age of the running nixpkgs: NixosDesyncNixpkgsOutOfDate fires above 14 days; orange from 7. */
export const OUT_OF_DATE: Step[] = [['green', null], ['orange', 604800], ['red', 1209600]];

function colorMode(mode: dashboard.FieldColorModeId): dashboard.FieldColorBuilder {
  return new dashboard.FieldColorBuilder().mode(mode);
}

/** Override properties for a table column. */
export const col = {
  unit: (unit: string): dashboard.DynamicConfigValue => ({ id: 'unit', value: unit }),
  background: (): dashboard.DynamicConfigValue => ({ id: 'custom.cellOptions', value: { type: 'color-background' } }),
  colorText: (): dashboard.DynamicConfigValue => ({ id: 'custom.cellOptions', value: { type: 'color-text' } }),
  mappings: (m: dashboard.ValueMapping[]): dashboard.DynamicConfigValue => ({ id: 'mappings', value: m }),
  thresholds: (...steps: Step[]): dashboard.DynamicConfigValue => ({ id: 'thresholds', value: thresholds(...steps).build() }),
  fixedColor: (color: string): dashboard.DynamicConfigValue => ({ id: 'color', value: { mode: 'fixed', fixedColor: color } }),
  /** The Host column links to the host dashboard of that row's instance. */
  hostLink: (): dashboard.DynamicConfigValue => ({
    id: 'links',
    value: [
      {
        title: 'Host detail',
        targetBlank: false,
        url: '/d/nixos-desync-host?var-instance=${__value.raw}&${datasource:queryparam}&${job:queryparam}',
      },
    ],
  }),
};

// ---------------------------------------------------------------------------------------------
// Panels

interface PanelBase {
  title: string;
  description: string;
  /** Grid size; the builder places panels left to right, rows below each other. */
  w: number;
  h: number;
}

/** One big number, coloured by thresholds (a count, a 0/1 state, an age). */
export function statPanel(
  o: PanelBase & {
    query: prometheus.DataqueryBuilder;
    unit?: string;
    steps: Step[];
    mappings?: dashboard.ValueMapping[];
    colorMode?: common.BigValueColorMode;
    textMode?: common.BigValueTextMode;
    /** Shown instead of "No data" where an absent series has a meaning ("never"). */
    noValue?: string;
  },
): stat.PanelBuilder {
  const p = new stat.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DS)
    .withTarget(o.query)
    .unit(o.unit ?? 'none')
    .thresholds(thresholds(...o.steps))
    .mappings(o.mappings ?? [])
    .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds))
    .overrides([])
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false))
    .colorMode(o.colorMode ?? common.BigValueColorMode.Background)
    .graphMode(common.BigValueGraphMode.None)
    .textMode(o.textMode ?? common.BigValueTextMode.Auto)
    .justifyMode(common.BigValueJustifyMode.Auto)
    .orientation(common.VizOrientation.Auto)
    .height(o.h)
    .span(o.w);
  if (o.noValue !== undefined) p.noValue(o.noValue);
  return p;
}

/** Lines (or stacked bars) over time with a table legend of last and max values. */
export function timeseriesPanel(
  o: PanelBase & {
    queries: prometheus.DataqueryBuilder[];
    unit?: string;
    bars?: boolean;
    stacked?: boolean;
    /** Default 0; null for panels whose axis should start at the data (generation numbers). */
    min?: number | null;
    /** Series colours by name. */
    colors?: Record<string, string>;
    /** Draw the series of this query dashed (a budget next to its value). */
    dashedRefId?: string;
  },
): timeseries.PanelBuilder {
  const p = new timeseries.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DS)
    .targets(o.queries)
    .unit(o.unit ?? 'none')
    .drawStyle(o.bars ? common.GraphDrawStyle.Bars : common.GraphDrawStyle.Line)
    .lineWidth(1)
    .fillOpacity(o.bars ? 80 : 10)
    .showPoints(common.VisibilityMode.Never)
    .spanNulls(false)
    .stacking(new common.StackingConfigBuilder().mode(o.stacked ?? o.bars ? common.StackingMode.Normal : common.StackingMode.None).group('A'))
    .colorScheme(colorMode(dashboard.FieldColorModeId.PaletteClassic))
    .overrides([])
    .legend(
      new common.VizLegendOptionsBuilder()
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .showLegend(true)
        .calcs(['lastNotNull', 'max']),
    )
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending))
    .height(o.h)
    .span(o.w);
  if (o.min !== null) p.min(o.min ?? 0);
  for (const [name, color] of Object.entries(o.colors ?? {})) p.overrideByName(name, [col.fixedColor(color)]);
  if (o.dashedRefId) {
    p.withOverride({
      matcher: { id: 'byFrameRefID', options: o.dashedRefId },
      properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }],
    });
  }
  return p;
}

/**
 * A table joining several instant queries (refIds A, B, …) on their labels; `columns` names
 * each label and each query's value column ("Value #A"), `hide` drops columns.
 */
export function tablePanel(
  o: PanelBase & {
    exprs: string[];
    columns: Record<string, string>;
    hide?: string[];
    overrides: Record<string, dashboard.DynamicConfigValue[]>;
    sortBy?: string;
  },
): table.PanelBuilder {
  const p = new table.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DS)
    .targets(o.exprs.map((e, i) => instant(String.fromCharCode(65 + i), e, { table: true })))
    .align(common.FieldTextAlignment.Auto)
    .cellOptions({ type: common.TableCellDisplayMode.Auto })
    .thresholds(thresholds(['green', null]))
    .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds))
    .overrides([])
    .showHeader(true)
    .cellHeight(common.TableCellHeight.Sm)
    .footer(new common.TableFooterOptionsBuilder().show(false).reducer(['sum']).fields([]))
    .withTransformation({ id: 'merge', options: {} })
    .withTransformation({
      id: 'organize',
      options: {
        excludeByName: Object.fromEntries(['Time', '__name__', ...(o.hide ?? [])].map((k) => [k, true])),
        renameByName: o.columns,
        indexByName: {},
      },
    })
    .height(o.h)
    .span(o.w);
  for (const [name, props] of Object.entries(o.overrides)) p.overrideByName(name, props);
  if (o.sortBy) p.sortBy([new common.TableSortByFieldStateBuilder().displayName(o.sortBy).desc(true)]);
  return p;
}

/** Horizontal bars, one per series of an instant query. */
export function barGaugePanel(
  o: PanelBase & { query: prometheus.DataqueryBuilder; unit: string; steps: Step[] },
): bargauge.PanelBuilder {
  return new bargauge.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DS)
    .withTarget(o.query)
    .unit(o.unit)
    .min(0)
    .thresholds(thresholds(...o.steps))
    .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds))
    .overrides([])
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .showUnfilled(true)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false))
    .height(o.h)
    .span(o.w);
}

/** A full-width row header. */
export function row(title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title).collapsed(false);
}

/**
 * Build, then number the panels 1, 2, … in order: Grafana's panel links (`viewPanel=N`) and
 * saved panel states use these ids, so they must not change when a panel is edited.
 */
export function render(d: dashboard.DashboardBuilder): dashboard.Dashboard {
  const out = d.build();
  (out.panels ?? []).forEach((p, i) => {
    p.id = i + 1;
  });
  // The SDK defaults links and annotations to placement "inControlsMenu", which Grafana 12
  // uses to hide them in the controls menu; the header links stay where users have them.
  for (const x of [...(out.links ?? []), ...(out.annotations?.list ?? [])]) delete x.placement;
  return out;
}
