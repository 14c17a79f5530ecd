// The bot's state with start/stop and the kill switch (trader), updated live from the `bot` topic.
import { useState } from "react";
import { api, type BotStatus } from "../../api";
import { useAuth } from "../../auth/AuthContext";
import { ConfirmDialog } from "../../components/Modal";
import { Badge, Notice, Panel, Stat } from "../../components/Panel";
import { AsyncView } from "../../components/States";
import type { Poll } from "../../hooks/usePoll";
import { fmtDuration, fmtAny } from "../../lib/format";
import { botTone } from "../../lib/tones";

type Dialog = "stop" | "engage" | "release" | null;

export function BotPanel({ poll }: { poll: Poll<BotStatus> }) {
  const { can } = useAuth();
  const [dialog, setDialog] = useState<Dialog>(null);
  const [flatten, setFlatten] = useState(false);
  const [note, setNote] = useState<{ kind: "ok" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const trader = can("trader");

  const start = async () => {
    setBusy(true);
    try {
      const res = await api.bot.start("started from the dashboard");
      if (res.status) poll.setData(() => res.status);
      setNote({ kind: "ok", text: res.changed ? "Entries allowed again." : "The bot was already running." });
    } catch (err) {
      setNote({ kind: "error", text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
      poll.reload();
    }
  };

  return (
    <Panel title="Bot" testId="panel-bot">
      <AsyncView poll={poll}>
        {(bot) => {
          const engaged = !!bot.kill_switch?.engaged;
          const holds = Object.entries(bot.holds ?? {});
          return (
            <>
              <div className="bot-head">
                <Badge tone={botTone(bot.state)} testId="bot-state">
                  {bot.state}
                </Badge>
                {engaged && (
                  <Badge tone="bad" testId="kill-switch-state" title={bot.kill_switch?.reason ?? undefined}>
                    kill switch engaged
                  </Badge>
                )}
                {bot.ready === false && <Badge tone="warn">not ready</Badge>}
                {trader && bot.trading_enabled && (
                  <div className="btn-row">
                    {bot.state === "paused" ? (
                      <button type="button" className="btn btn-primary" disabled={busy} onClick={start} data-testid="bot-start">
                        Start
                      </button>
                    ) : (
                      <button type="button" className="btn" disabled={busy || bot.state !== "running"} onClick={() => setDialog("stop")} data-testid="bot-stop">
                        Stop
                      </button>
                    )}
                    {engaged ? (
                      <button type="button" className="btn" onClick={() => setDialog("release")} data-testid="kill-switch-release">
                        Release kill switch
                      </button>
                    ) : (
                      <button type="button" className="btn btn-danger" onClick={() => setDialog("engage")} data-testid="kill-switch-engage">
                        Kill switch
                      </button>
                    )}
                  </div>
                )}
              </div>
              {bot.paused_reason && <p className="muted">Paused: {bot.paused_reason}</p>}
              {engaged && bot.kill_switch?.reason && <p className="text-bad">Halted: {bot.kill_switch.reason}</p>}
              <div className="stats">
                <Stat label="Venue">{bot.venue ?? "—"}</Stat>
                <Stat label="Uptime">{fmtDuration(bot.uptime_s)}</Stat>
                <Stat label="Trading">{bot.trading_enabled ? "enabled" : "recording only"}</Stat>
                <Stat label="Reconciled">{fmtAny(bot.reconciled)}</Stat>
                <Stat label="Model" testId="bot-model">
                  {bot.model_version ?? <span className="muted">{bot.model_fallback ?? "none"}</span>}
                </Stat>
                <Stat label="Rows recorded">{bot.rows_recorded?.toLocaleString("en-US") ?? "—"}</Stat>
              </div>
              <div className="chips">
                {(bot.symbols ?? []).map((s) => (
                  <span key={s} className="chip">
                    {s}
                  </span>
                ))}
              </div>
              {holds.length > 0 && (
                <div className="notice notice-info">
                  Holds: {holds.map(([k, v]) => `${k}: ${v}`).join("; ")}
                </div>
              )}
              {note && (
                <Notice kind={note.kind} onClose={() => setNote(null)} testId="bot-result">
                  {note.text}
                </Notice>
              )}
            </>
          );
        }}
      </AsyncView>
      {dialog === "stop" && (
        <ConfirmDialog
          title="Stop the bot?"
          confirmLabel="Stop entries"
          withReason
          testId="confirm-bot-stop"
          onClose={() => setDialog(null)}
          onConfirm={async (reason) => {
            const res = await api.bot.stop(reason);
            if (res.status) poll.setData(() => res.status);
            setNote({ kind: "ok", text: res.changed ? "Entries stopped; open orders and positions stay managed." : "The bot was already stopped." });
            poll.reload();
          }}
        >
          <p>New entries are refused; exits and protection keep working.</p>
        </ConfirmDialog>
      )}
      {dialog === "engage" && (
        <ConfirmDialog
          title="Engage the kill switch?"
          confirmLabel="Engage"
          withReason
          testId="confirm-kill-switch"
          onClose={() => setDialog(null)}
          onConfirm={async (reason) => {
            const res = await api.trading.engageKillSwitch(reason, flatten);
            const parts = [`Kill switch engaged; ${res.cancelled?.length ?? 0} orders cancelled`];
            if (flatten) parts.push(`${res.flattened?.length ?? 0} positions flattened`);
            if (res.errors?.length) parts.push(`errors: ${res.errors.join("; ")}`);
            setNote({ kind: res.errors?.length ? "error" : "ok", text: parts.join(", ") + "." });
            poll.reload();
          }}
        >
          <p>Halts all entries and cancels every working order.</p>
          <label className="check">
            <input type="checkbox" checked={flatten} onChange={(e) => setFlatten(e.target.checked)} data-testid="kill-switch-flatten" />
            Also close every position at market
          </label>
        </ConfirmDialog>
      )}
      {dialog === "release" && (
        <ConfirmDialog
          title="Release the kill switch?"
          confirmLabel="Release"
          danger={false}
          withReason
          testId="confirm-kill-switch-release"
          onClose={() => setDialog(null)}
          onConfirm={async (reason) => {
            await api.trading.releaseKillSwitch(reason);
            setNote({ kind: "ok", text: "Kill switch released." });
            poll.reload();
          }}
        >
          <p>Entries become possible again (if the bot is running).</p>
        </ConfirmDialog>
      )}
    </Panel>
  );
}
