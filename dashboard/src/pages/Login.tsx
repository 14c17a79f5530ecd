// Sign in. The server's refusal is shown as it said it (wrong password, too many attempts, or that no
// user exists yet because APP_PASSWORD is unset).
import { useState, type FormEvent } from "react";
import { Navigate, useSearchParams } from "react-router";
import { errorMessage } from "../api";
import { useAuth } from "../auth/AuthContext";

export function LoginPage() {
  const { auth, login } = useAuth();
  const [params] = useSearchParams();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const next = params.get("next");
  if (auth) return <Navigate to={next && next.startsWith("/") && !next.startsWith("//") ? next : "/"} replace />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };

  return (
    <div className="login-page">
      <form className="login-card" onSubmit={submit} data-testid="login-form">
        <div className="brand login-brand">
          <span className="brand-mark" aria-hidden="true" />
          <span className="brand-name">Depthcharge</span>
        </div>
        <label className="field">
          <span>Username</span>
          <input autoFocus autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} data-testid="login-username" required />
        </label>
        <label className="field">
          <span>Password</span>
          <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} data-testid="login-password" required />
        </label>
        {error && (
          <div className="state state-error" role="alert" data-testid="login-error">
            {error}
          </div>
        )}
        <button type="submit" className="btn btn-primary btn-block" disabled={busy || !username || !password} data-testid="login-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
