// The routes. Every page but the login needs a session; losing it (a refused refresh) lands on /login,
// which returns to the page the person was on.
import type { ReactNode } from "react";
import { Navigate, Route, Routes, useLocation } from "react-router";
import { useAuth } from "./auth/AuthContext";
import { Layout } from "./components/Layout";
import { Empty } from "./components/States";
import { ChartsPage } from "./pages/Charts";
import { LoginPage } from "./pages/Login";
import { ModelsPage } from "./pages/Models";
import { OrdersPage } from "./pages/Orders";
import { OverviewPage } from "./pages/Overview";
import { ScreenerPage } from "./pages/Screener";
import { StrategiesPage } from "./pages/Strategies";

function RequireAuth({ children }: { children: ReactNode }) {
  const { auth } = useAuth();
  const location = useLocation();
  if (!auth) {
    const next = location.pathname + location.search;
    return <Navigate to={`/login${next && next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`} replace />;
  }
  return <>{children}</>;
}

export function App() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route
        element={
          <RequireAuth>
            <Layout />
          </RequireAuth>
        }
      >
        <Route index element={<OverviewPage />} />
        <Route path="screener" element={<ScreenerPage />} />
        <Route path="charts" element={<ChartsPage />} />
        <Route path="orders" element={<OrdersPage />} />
        <Route path="strategies" element={<StrategiesPage />} />
        <Route path="models" element={<ModelsPage />} />
        <Route path="*" element={<Empty>No such page.</Empty>} />
      </Route>
    </Routes>
  );
}
