// Line series on one lightweight-charts chart: drift severity over time (one series per symbol) or a
// loss curve over epochs (the time axis then carries epoch numbers, not dates).
import { useEffect, useRef } from "react";
import { LineType, createChart, type IChartApi, type ISeriesApi, type Time, type UTCTimestamp } from "lightweight-charts";
import { CHART_THEME } from "./CandleChart";

export interface LineSeriesSpec {
  name: string;
  color: string;
  points: Array<{ time: number; value: number }>; // time: seconds, or the epoch number in "index" mode
}

export const PALETTE = ["#42a5f5", "#f0b90b", "#ab47bc", "#26a69a", "#ef5350", "#ff7043", "#8d6e63", "#66bb6a", "#ec407a", "#7e57c2", "#26c6da", "#d4e157"];

/** Points sorted by time with one value per time (the last wins), as lightweight-charts requires. */
export function cleanPoints(points: LineSeriesSpec["points"]): LineSeriesSpec["points"] {
  const byTime = new Map<number, number>();
  for (const p of points) if (Number.isFinite(p.time) && Number.isFinite(p.value)) byTime.set(p.time, p.value);
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
}

export function LineChart({
  series,
  height = 180,
  mode = "time",
  steps = false,
  range,
  formatValue,
  testId,
}: {
  series: LineSeriesSpec[];
  height?: number;
  mode?: "time" | "index";
  steps?: boolean;
  range?: { min: number; max: number };
  formatValue?: (v: number) => string;
  testId?: string;
}) {
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const drawn = useRef<Map<string, ISeriesApi<"Line">>>(new Map());

  useEffect(() => {
    if (!container.current) return;
    const index = mode === "index";
    const c = createChart(container.current, {
      ...CHART_THEME,
      autoSize: true,
      handleScroll: false,
      handleScale: false,
      timeScale: {
        ...CHART_THEME.timeScale,
        timeVisible: !index,
        ...(index ? { tickMarkFormatter: (t: Time) => String(t) } : {}),
      },
      localization: {
        ...(index ? { timeFormatter: (t: Time) => `epoch ${String(t)}` } : {}),
        ...(formatValue ? { priceFormatter: formatValue } : {}),
      },
    });
    chart.current = c;
    const map = drawn.current;
    return () => {
      map.clear();
      chart.current = null;
      c.remove();
    };
  }, [mode]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const wanted = new Set(series.map((s) => s.name));
    for (const [name, s] of drawn.current) {
      if (!wanted.has(name)) {
        c.removeSeries(s);
        drawn.current.delete(name);
      }
    }
    for (const spec of series) {
      let s = drawn.current.get(spec.name);
      if (!s) {
        s = c.addLineSeries({
          color: spec.color,
          lineWidth: 2,
          lineType: steps ? LineType.WithSteps : LineType.Simple,
          priceLineVisible: false,
          lastValueVisible: false, // the legend names the series; axis labels would pile up
          ...(range ? { autoscaleInfoProvider: () => ({ priceRange: { minValue: range.min, maxValue: range.max } }) } : {}),
        });
        drawn.current.set(spec.name, s);
      }
      s.setData(cleanPoints(spec.points).map((p) => ({ time: p.time as UTCTimestamp, value: p.value })));
    }
    c.timeScale().fitContent();
  }, [series, steps, range?.min, range?.max]); // eslint-disable-line react-hooks/exhaustive-deps

  return <div className="chart-canvas" style={{ height }} ref={container} data-testid={testId} />;
}
