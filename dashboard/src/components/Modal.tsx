// A dialog over the page: closes on Escape or a click outside; focus moves in and back out.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { errorMessage } from "../api";

// Open dialogs, innermost last: Escape closes only the innermost (a confirmation over a detail).
const openModals: object[] = [];

export function Modal({
  title,
  onClose,
  children,
  wide = false,
  testId,
}: {
  title: ReactNode;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const closeRef = useRef(onClose);
  closeRef.current = onClose;
  useEffect(() => {
    const me = {};
    openModals.push(me);
    const previous = document.activeElement as HTMLElement | null;
    box.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape" && openModals[openModals.length - 1] === me) closeRef.current();
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      openModals.splice(openModals.indexOf(me), 1);
      previous?.focus?.();
    };
  }, []);
  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div
        className={`modal ${wide ? "modal-wide" : ""}`}
        role="dialog"
        aria-modal="true"
        tabIndex={-1}
        ref={box}
        data-testid={testId}
      >
        <div className="modal-head">
          <h2>{title}</h2>
          <button type="button" className="btn-icon" aria-label="Close" data-testid="modal-close" onClick={onClose}>
            ×
          </button>
        </div>
        <div className="modal-body">{children}</div>
      </div>
    </div>
  );
}

/**
 * "Are you sure?" with the action run inside: the button shows progress, and a refusal from the server is
 * shown in the dialog instead of closing it.
 */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  danger = true,
  onConfirm,
  onClose,
  testId = "confirm-action",
  withReason = false,
  keepOpen = false,
}: {
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: (reason: string) => Promise<void>;
  onClose: () => void;
  testId?: string;
  withReason?: boolean;
  /** Leave closing to the caller after success (it swaps in a result view). */
  keepOpen?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [reason, setReason] = useState("");
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm(reason.trim() || "operator request from the dashboard");
      if (keepOpen) setBusy(false);
      else onClose();
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };
  return (
    <Modal title={title} onClose={busy ? () => undefined : onClose} testId="confirm-dialog">
      {children}
      {withReason && (
        <label className="field">
          <span>Reason</span>
          <input
            data-testid="confirm-reason"
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            placeholder="why (kept in the audit log)"
          />
        </label>
      )}
      {error && <div className="state state-error" role="alert" data-testid="confirm-error">{error}</div>}
      <div className="modal-actions">
        <button type="button" className="btn" onClick={onClose} disabled={busy} data-testid="confirm-cancel">
          Cancel
        </button>
        <button type="button" className={`btn ${danger ? "btn-danger" : "btn-primary"}`} onClick={run} disabled={busy} data-testid={testId}>
          {busy ? "Working…" : confirmLabel}
        </button>
      </div>
    </Modal>
  );
}
