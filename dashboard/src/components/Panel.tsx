import type { ReactNode } from "react";

export function Panel({
  title,
  actions,
  children,
  className = "",
  testId,
}: {
  title: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  className?: string;
  testId?: string;
}) {
  return (
    <section className={`panel ${className}`} data-testid={testId}>
      <header className="panel-head">
        <h3>{title}</h3>
        {actions && <div className="panel-actions">{actions}</div>}
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}

/** A label and a value, for the key figures of a panel. */
export function Stat({ label, children, testId, className = "" }: { label: string; children: ReactNode; testId?: string; className?: string }) {
  return (
    <div className={`stat ${className}`}>
      <div className="stat-label">{label}</div>
      <div className="stat-value" data-testid={testId}>
        {children}
      </div>
    </div>
  );
}

/** A small coloured label: states, sides, severities. */
export function Badge({ tone = "neutral", children, testId, title }: { tone?: string; children: ReactNode; testId?: string; title?: string }) {
  return (
    <span className={`badge badge-${tone}`} data-testid={testId} title={title}>
      {children}
    </span>
  );
}

/** The result of an action, shown where it was taken until dismissed or replaced. */
export function Notice({ kind, children, onClose, testId }: { kind: "ok" | "error" | "info"; children: ReactNode; onClose?: () => void; testId?: string }) {
  return (
    <div className={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"} data-kind={kind}>
      <span data-testid={testId}>{children}</span>
      {onClose && (
        <button type="button" className="btn-icon" aria-label="Dismiss" onClick={onClose}>
          ×
        </button>
      )}
    </div>
  );
}
