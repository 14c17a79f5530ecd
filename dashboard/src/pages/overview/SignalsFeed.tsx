// Signals as they happen: the last few from the API, then every `signal` message from the socket.
import { useEffect, useState } from "react";
import { api, type Signal } from "../../api";
import { Badge, Panel } from "../../components/Panel";
import { Empty, ErrorBox, Loading } from "../../components/States";
import { useOnReconnect, useTopic } from "../../live/LiveContext";
import { signalsOf } from "../../live/extract";
import { fmtClock, fmtPrice } from "../../lib/format";
import { sideTone } from "../../lib/tones";

const KEEP = 50;

function key(s: Signal): string {
  return s.id != null ? `id:${s.id}` : `${s.ts}:${s.symbol}:${s.source}:${s.action}`;
}

/** Newest first, without duplicates (the same signal from the API and the socket), at most `KEEP`. */
export function mergeSignals(current: Signal[], incoming: Signal[]): Signal[] {
  const seen = new Set<string>();
  const out: Signal[] = [];
  for (const s of [...incoming, ...current].sort((a, b) => b.ts - a.ts)) {
    const k = key(s);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(s);
    if (out.length >= KEEP) break;
  }
  return out;
}

export function SignalsFeed() {
  const [signals, setSignals] = useState<Signal[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    api.trading
      .signals({ limit: 30 }, controller.signal)
      .then((rows) => {
        setSignals((cur) => mergeSignals(cur ?? [], rows));
        setError(null);
      })
      .catch((err: unknown) => {
        if (controller.signal.aborted) return;
        setError(err instanceof Error ? err.message : String(err));
        setSignals((cur) => cur ?? []);
      });
    return () => controller.abort();
  }, [tick]);

  useTopic("signal", (data) => {
    const incoming = signalsOf(data);
    if (incoming.length) setSignals((cur) => mergeSignals(cur ?? [], incoming));
  });
  useOnReconnect(() => setTick((t) => t + 1));

  return (
    <Panel title="Live signals" testId="panel-signals">
      {error && <ErrorBox message={error} onRetry={() => setTick((t) => t + 1)} />}
      {signals === null ? (
        <Loading />
      ) : signals.length === 0 ? (
        !error && <Empty>No signals yet.</Empty>
      ) : (
        <ul className="feed" data-testid="signals-feed">
          {signals.map((s) => (
            <li key={key(s)} className="feed-item">
              <span className="muted mono">{fmtClock(s.ts)}</span>
              <span className="sym">{s.symbol}</span>
              <Badge tone={sideTone(s.action)}>{s.action}</Badge>
              <span className="muted">{s.source}</span>
              <span className="mono">{s.price != null ? fmtPrice(s.price) : ""}</span>
              <span className="muted small">
                {s.strength != null ? `str ${s.strength.toFixed(2)}` : ""}
                {s.confidence != null ? ` conf ${s.confidence.toFixed(2)}` : ""}
              </span>
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}
