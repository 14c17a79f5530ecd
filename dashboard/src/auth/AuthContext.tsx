// Who is signed in, and what their role lets them do. The token store in api/client.ts is the source
// of truth; this context mirrors it so a 401 anywhere sends the person back to the login page.
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, getAuth, onAuthChange, type Role, type StoredAuth } from "../api";

const RANK: Record<Role, number> = { viewer: 0, trader: 1, admin: 2 };

export interface AuthValue {
  auth: StoredAuth | null;
  /** True when the signed-in role is `needed` or higher. */
  can: (needed: Role) => boolean;
  login: (username: string, password: string) => Promise<void>;
  logout: () => void;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [auth, setAuth] = useState<StoredAuth | null>(getAuth);
  useEffect(() => onAuthChange(setAuth), []);

  const value = useMemo<AuthValue>(
    () => ({
      auth,
      can: (needed) => !!auth && (RANK[auth.role] ?? 0) >= RANK[needed],
      login: async (username, password) => {
        await api.auth.login(username, password);
      },
      logout: () => api.auth.logout(),
    }),
    [auth],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}
