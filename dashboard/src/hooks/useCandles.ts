// Five-minute candles of one symbol, refreshed every 15 s: the first read fetches a history, later reads
// only the newest few, merged in; at most MAX_CANDLES are kept.
import { useEffect, useState } from "react";
import { api, errorMessage, type Candle } from "../api";
import { MAX_CANDLES, mergeCandles } from "../lib/candles";

export const CANDLE_INTERVAL_MIN = 5;
export const CANDLE_INTERVAL_MS = CANDLE_INTERVAL_MIN * 60_000;
export const REFRESH_MS = 15_000;
const HISTORY = 200;
const UPDATE = 3; // the forming candle and the two before it cover any refresh gap below 10 minutes

export interface CandlesState {
  candles: Candle[];
  loading: boolean;
  error: string | null;
}

export function useCandles(symbol: string, history = HISTORY): CandlesState {
  const [state, setState] = useState<CandlesState>({ candles: [], loading: true, error: null });
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    let loaded = false; // a full history is in hand; false again after a failure, to close any gap
    setState({ candles: [], loading: true, error: null });
    const load = async () => {
      try {
        const limit = loaded ? UPDATE : history;
        const fresh = await api.market.klines(symbol, CANDLE_INTERVAL_MIN, limit, controller.signal);
        if (controller.signal.aborted) return;
        loaded = true;
        setState((prev) => ({ candles: mergeCandles(prev.candles, fresh, MAX_CANDLES), loading: false, error: null }));
      } catch (err) {
        if (controller.signal.aborted) return;
        loaded = false;
        setState((prev) => ({ ...prev, loading: false, error: errorMessage(err) }));
      }
      if (!controller.signal.aborted) timer = setTimeout(load, REFRESH_MS);
    };
    void load();
    return () => {
      controller.abort();
      if (timer) clearTimeout(timer);
    };
  }, [symbol, history]);
  return state;
}
