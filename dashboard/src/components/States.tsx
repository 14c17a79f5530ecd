// Loading, empty and error states, the same on every page.
import type { ReactNode } from "react";
import type { Poll } from "../hooks/usePoll";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state state-loading" data-testid="state-loading" aria-busy="true">
      <span className="spinner" aria-hidden="true" /> {label}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <div className="state state-empty" data-testid="state-empty">
      {children}
    </div>
  );
}

export function ErrorBox({ message, onRetry }: { message: string; onRetry?: () => void }) {
  return (
    <div className="state state-error" data-testid="state-error" role="alert">
      <span>{message}</span>
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

/**
 * The usual rendering of a polled resource: a spinner until the first answer, the server's error if that
 * failed, `emptyText` when `isEmpty`, otherwise the content (with a small banner if a refresh failed).
 */
export function AsyncView<T>({
  poll,
  isEmpty,
  emptyText,
  children,
}: {
  poll: Poll<T>;
  isEmpty?: (data: T) => boolean;
  emptyText?: ReactNode;
  children: (data: T) => ReactNode;
}) {
  if (poll.data === undefined) {
    if (poll.loading) return <Loading />;
    // 503: the daemon runs without this part (recording only, no model): its message says which setting.
    if (poll.error && poll.status === 503) return <Empty>{poll.error}</Empty>;
    if (poll.error) return <ErrorBox message={poll.error} onRetry={poll.reload} />;
    return <Loading />;
  }
  const content = isEmpty?.(poll.data) ? <Empty>{emptyText ?? "Nothing yet."}</Empty> : children(poll.data);
  return (
    <>
      {poll.error && <div className="stale-banner" role="status">Refresh failed: {poll.error}</div>}
      {content}
    </>
  );
}
