// The frame of every signed-in page: a sidebar (a top bar on phones) and a header that always shows the
// live connection, who is signed in and their role.
import { useState } from "react";
import { NavLink, Outlet } from "react-router";
import { api } from "../api";
import { useAuth } from "../auth/AuthContext";
import { useConnectionState } from "../live/LiveContext";
import { ConfirmDialog } from "./Modal";

const NAV = [
  { to: "/", label: "Overview", id: "overview", icon: "◎" },
  { to: "/screener", label: "Screener", id: "screener", icon: "≣" },
  { to: "/charts", label: "Charts", id: "charts", icon: "▥" },
  { to: "/orders", label: "Orders", id: "orders", icon: "⇄" },
  { to: "/strategies", label: "Strategies", id: "strategies", icon: "⚙" },
  { to: "/models", label: "Models", id: "models", icon: "◈" },
] as const;

const CONNECTION_TEXT = { connected: "Live", reconnecting: "Reconnecting…", offline: "Offline" } as const;

export function ConnectionBadge() {
  const state = useConnectionState();
  return (
    <span className={`conn conn-${state}`} data-testid="connection-state" data-state={state} title={`WebSocket: ${state}`}>
      <span className="dot" aria-hidden="true" />
      {CONNECTION_TEXT[state]}
    </span>
  );
}

export function Layout() {
  const { auth, logout } = useAuth();
  const [changing, setChanging] = useState(false);
  return (
    <div className="shell">
      <aside className="sidebar">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true" />
          <span className="brand-name">Depthcharge</span>
        </div>
        <nav className="nav" aria-label="Pages">
          {NAV.map((item) => (
            <NavLink key={item.id} to={item.to} end={item.to === "/"} data-testid={`nav-${item.id}`} className={({ isActive }) => (isActive ? "active" : "")}>
              <span className="nav-icon" aria-hidden="true">
                {item.icon}
              </span>
              <span className="nav-label">{item.label}</span>
            </NavLink>
          ))}
        </nav>
      </aside>
      <div className="main">
        <header className="topbar">
          <ConnectionBadge />
          <div className="spacer" />
          <span className="user" data-testid="current-user">
            {auth?.username}
            <span className={`role role-${auth?.role}`} data-testid="current-role">
              {auth?.role}
            </span>
          </span>
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setChanging(true)} data-testid="change-password">
            Password
          </button>
          <button type="button" className="btn btn-small btn-ghost" onClick={logout} data-testid="logout">
            Sign out
          </button>
        </header>
        <main className="content">
          <Outlet />
        </main>
      </div>
      {changing && <ChangePasswordDialog onClose={() => setChanging(false)} />}
    </div>
  );
}

function ChangePasswordDialog({ onClose }: { onClose: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [done, setDone] = useState(false);
  if (done) {
    return (
      <ConfirmDialog title="Password changed" confirmLabel="OK" danger={false} onConfirm={async () => undefined} onClose={onClose} testId="password-done">
        <p>Your password is changed; this session continues with new tokens.</p>
      </ConfirmDialog>
    );
  }
  return (
    <ConfirmDialog
      title="Change password"
      confirmLabel="Change"
      danger={false}
      testId="password-submit"
      onClose={onClose}
      onConfirm={async () => {
        await api.auth.changePassword(current, next);
        setDone(true);
      }}
      keepOpen
    >
      <label className="field">
        <span>Current password</span>
        <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} data-testid="password-current" />
      </label>
      <label className="field">
        <span>New password</span>
        <input type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} data-testid="password-new" />
      </label>
    </ConfirmDialog>
  );
}
