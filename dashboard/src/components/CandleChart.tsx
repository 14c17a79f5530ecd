// A candlestick chart (lightweight-charts) that owns its chart object: created on mount, fed by props,
// and removed with chart.remove() on unmount so a deselected chart leaves nothing behind.
import { useEffect, useRef } from "react";
import {
  ColorType,
  CrosshairMode,
  LineStyle,
  createChart,
  type IChartApi,
  type IPriceLine,
  type ISeriesApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import type { Bar, ChartMarker } from "../lib/candles";

export const CHART_THEME = {
  layout: {
    background: { type: ColorType.Solid, color: "transparent" },
    textColor: "#8b93a7",
    fontSize: 11,
    fontFamily: "Inter, system-ui, sans-serif",
  },
  grid: { vertLines: { color: "#1a2030" }, horzLines: { color: "#1a2030" } },
  rightPriceScale: { borderColor: "#263044" },
  timeScale: { borderColor: "#263044", timeVisible: true, secondsVisible: false },
  crosshair: { mode: CrosshairMode.Normal },
} as const;

export interface PriceLineSpec {
  price: number;
  title: string;
  color?: string;
}

export function CandleChart({
  bars,
  markers,
  precision = 2,
  priceLine,
  height = 260,
  testId,
}: {
  bars: readonly Bar[];
  markers: readonly ChartMarker[];
  precision?: number;
  priceLine?: PriceLineSpec | null;
  height?: number;
  testId?: string;
}) {
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const line = useRef<IPriceLine | null>(null);
  const fitted = useRef(false);

  useEffect(() => {
    if (!container.current) return;
    const c = createChart(container.current, { ...CHART_THEME, autoSize: true });
    series.current = c.addCandlestickSeries({
      upColor: "#26a69a",
      downColor: "#ef5350",
      borderVisible: false,
      wickUpColor: "#26a69a",
      wickDownColor: "#ef5350",
    });
    chart.current = c;
    return () => {
      chart.current = null;
      series.current = null;
      line.current = null;
      fitted.current = false;
      c.remove();
    };
  }, []);

  useEffect(() => {
    series.current?.applyOptions({ priceFormat: { type: "price", precision, minMove: 10 ** -precision } });
  }, [precision]);

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    s.setData(bars.map((b) => ({ ...b, time: b.time as UTCTimestamp })));
    // Fit once when data first arrives; afterwards keep the person's zoom and scroll.
    if (bars.length && !fitted.current) {
      chart.current?.timeScale().fitContent();
      fitted.current = true;
    }
  }, [bars]);

  useEffect(() => {
    series.current?.setMarkers(markers.map((m) => ({ ...m, time: m.time as UTCTimestamp }) as SeriesMarker<Time>));
  }, [markers, bars]);

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    if (line.current) s.removePriceLine(line.current);
    line.current = priceLine
      ? s.createPriceLine({
          price: priceLine.price,
          title: priceLine.title,
          color: priceLine.color ?? "#f0b90b",
          lineStyle: LineStyle.Dashed,
          lineWidth: 1,
          axisLabelVisible: true,
        })
      : null;
  }, [priceLine?.price, priceLine?.title, priceLine?.color]); // eslint-disable-line react-hooks/exhaustive-deps

  return <div className="chart-canvas" style={{ height }} ref={container} data-testid={testId} />;
}
