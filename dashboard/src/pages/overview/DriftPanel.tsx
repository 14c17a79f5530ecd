// Drift severity over time, one stepped line per symbol (0 none … 3 high), from /api/ml/drift/history.
import { useMemo } from "react";
import type { DriftPoint } from "../../api";
import { LineChart, PALETTE, type LineSeriesSpec } from "../../components/LineChart";
import { Panel } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { severityLevel, severityName } from "../../lib/severity";

export function driftSeries(history: Record<string, DriftPoint[]>): LineSeriesSpec[] {
  return Object.keys(history)
    .sort()
    .map((symbol, i) => ({
      name: symbol,
      color: PALETTE[i % PALETTE.length]!,
      points: (history[symbol] ?? []).flatMap((p) => {
        const value = p.severity_level ?? severityLevel(p.severity);
        return value === null || value === undefined ? [] : [{ time: Math.floor(p.window_end_ms / 1000), value }];
      }),
    }))
    .filter((s) => s.points.length > 0);
}

const RANGE = { min: 0, max: 3 };

export function DriftPanel({ poll }: { poll: Poll<Record<string, DriftPoint[]>> }) {
  const series = useMemo(() => (poll.data ? driftSeries(poll.data) : []), [poll.data]);
  return (
    <Panel title="Drift severity (7 days)" testId="panel-drift">
      <AsyncView poll={poll} isEmpty={() => series.length === 0} emptyText="No drift reports yet.">
        {() => (
          <>
            <LineChart series={series} steps range={RANGE} formatValue={severityName} height={170} testId="drift-chart" />
            <div className="legend">
              {series.map((s) => (
                <span key={s.name} className="legend-item">
                  <span className="swatch" style={{ background: s.color }} />
                  {s.name}
                </span>
              ))}
            </div>
          </>
        )}
      </AsyncView>
    </Panel>
  );
}
