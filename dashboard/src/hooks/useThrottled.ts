import { useEffect, useRef } from "react";

/**
 * A function that runs `fn` at most once per `ms`: the first call at once, calls during the pause folded
 * into one at its end. For "something changed, re-read it" events that come in bursts (fills, orders).
 */
export function useThrottled(fn: () => void, ms: number): () => void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const state = useRef<{ last: number; timer: ReturnType<typeof setTimeout> | null }>({ last: 0, timer: null });
  useEffect(() => () => {
    if (state.current.timer) clearTimeout(state.current.timer);
  }, []);
  const ref = useRef(() => {
    const s = state.current;
    if (s.timer) return;
    const wait = s.last + ms - Date.now();
    if (wait <= 0) {
      s.last = Date.now();
      fnRef.current();
      return;
    }
    s.timer = setTimeout(() => {
      s.timer = null;
      s.last = Date.now();
      fnRef.current();
    }, wait);
  });
  return ref.current;
}
