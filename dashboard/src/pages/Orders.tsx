// Orders: filters, sorting and paging on the server, statistics, auto refresh (a timer and the `order` and
// `fill` topics), and a detail modal with live PnL and the close control.
import { useEffect, useMemo, useState } from "react";
import { useSearchParams } from "react-router";
import { api, type Order, type OrderQuery, type OrderSortKey } from "../api";
import { Badge } from "../components/Panel";
import { SortHeader } from "../components/SortHeader";
import { AsyncView } from "../components/States";
import { usePoll } from "../hooks/usePoll";
import { useThrottled } from "../hooks/useThrottled";
import { useOnReconnect, useTopic } from "../live/LiveContext";
import { fmtPrice, fmtQty, fmtTime } from "../lib/format";
import { sortRows, type Direction, type SortState } from "../lib/sort";
import { orderStatusTone, sideTone } from "../lib/tones";
import { OrderDetailModal } from "./OrderDetail";

const PAGE_SIZES = [25, 50, 100];
const STATUSES = ["Pending", "Placed", "Partially_Filled", "Filled", "Cancelled", "Rejected", "Failed"];

type Col = "created" | "symbol" | "side" | "order_type" | "quantity" | "price" | "filled" | "avg_fill_price" | "status" | "strategy" | "updated";

// Columns the server sorts by map to its `sort` key; the others are sorted within the page shown.
const COLUMNS: Array<{ key: Col; label: string; server?: OrderSortKey; numeric?: boolean; get: (o: Order) => unknown }> = [
  { key: "created", label: "Created", server: "created", get: (o) => o.created_ms },
  { key: "symbol", label: "Symbol", server: "symbol", get: (o) => o.symbol },
  { key: "side", label: "Side", server: "side", get: (o) => o.side },
  { key: "order_type", label: "Type", get: (o) => o.order_type },
  { key: "quantity", label: "Qty", server: "quantity", numeric: true, get: (o) => o.quantity },
  { key: "price", label: "Price", server: "price", numeric: true, get: (o) => o.price },
  { key: "filled", label: "Filled", server: "filled", numeric: true, get: (o) => o.filled_quantity },
  { key: "avg_fill_price", label: "Avg fill", numeric: true, get: (o) => o.avg_fill_price },
  { key: "status", label: "Status", server: "status", get: (o) => o.status },
  { key: "strategy", label: "Strategy", get: (o) => o.strategy },
  { key: "updated", label: "Updated", server: "updated", get: (o) => o.updated_ms },
];

function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

export function OrdersPage() {
  const [params, setParams] = useSearchParams();
  const [symbol, setSymbol] = useState("");
  const [side, setSide] = useState("");
  const [status, setStatus] = useState("");
  const [strategyInput, setStrategyInput] = useState("");
  const strategy = useDebounced(strategyInput.trim(), 400);
  const [sort, setSort] = useState<SortState<Col>>({ key: "created", direction: "desc" });
  const [page, setPage] = useState(1);
  const [pageSize, setPageSize] = useState(25);
  const openId = params.get("order");

  const column = COLUMNS.find((c) => c.key === sort.key)!;
  const query: OrderQuery = {
    symbol: symbol || undefined,
    side: side || undefined,
    status: status && status !== "active" ? status : undefined,
    active: status === "active" ? true : undefined,
    strategy: strategy || undefined,
    sort: column.server ?? "created",
    direction: column.server ? sort.direction : "desc",
    page,
    page_size: pageSize,
  };
  const key = JSON.stringify(query);
  const orders = usePoll((s) => api.trading.orders(query, s), 5_000, [key]);
  const pairs = usePoll((s) => api.data.pairs(s), null);
  const changed = useThrottled(orders.reload, 1_000);
  useTopic("order", changed);
  useTopic("fill", changed);
  useOnReconnect(orders.reload);

  // Filters and sorting start again from the first page.
  useEffect(() => setPage(1), [symbol, side, status, strategy, sort.key, sort.direction, pageSize]);

  const rows = useMemo(() => {
    const items = orders.data?.items ?? [];
    return column.server ? items : sortRows(items, column.get, sort.direction);
  }, [orders.data, column, sort.direction]);

  const onSort = (key: Col) =>
    setSort((s) => ({ key, direction: (s.key === key ? (s.direction === "asc" ? "desc" : "asc") : key === "symbol" || key === "side" || key === "status" || key === "strategy" || key === "order_type" ? "asc" : "desc") as Direction }));

  const total = orders.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const stats = orders.data?.stats;
  const open = (id: string | null) => {
    const next = new URLSearchParams(params);
    if (id) next.set("order", id);
    else next.delete("order");
    setParams(next, { replace: !id });
  };
  const filtered = !!(symbol || side || status || strategy);

  return (
    <div className="page">
      <h1 className="page-title">Orders</h1>
      <div className="cards" data-testid="order-stats">
        {(["total", "active", "filled", "cancelled", "rejected", "failed"] as const).map((k) => (
          <div key={k} className={`card card-${k}`}>
            <div className="card-label">{k}</div>
            <div className="card-value" data-testid={`order-stat-${k}`}>
              {stats?.[k] ?? (orders.data ? 0 : "—")}
            </div>
          </div>
        ))}
      </div>
      <div className="filters" data-testid="order-filters">
        <select value={symbol} onChange={(e) => setSymbol(e.target.value)} data-testid="filter-symbol" aria-label="Symbol">
          <option value="">All symbols</option>
          {(pairs.data ?? []).map((p) => (
            <option key={p.symbol} value={p.symbol}>
              {p.symbol}
            </option>
          ))}
        </select>
        <select value={side} onChange={(e) => setSide(e.target.value)} data-testid="filter-side" aria-label="Side">
          <option value="">Both sides</option>
          <option value="Buy">Buy</option>
          <option value="Sell">Sell</option>
        </select>
        <select value={status} onChange={(e) => setStatus(e.target.value)} data-testid="filter-status" aria-label="Status">
          <option value="">Any status</option>
          <option value="active">Active (working)</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s.replace("_", " ")}
            </option>
          ))}
        </select>
        <input placeholder="Strategy" value={strategyInput} onChange={(e) => setStrategyInput(e.target.value)} data-testid="filter-strategy" aria-label="Strategy" />
        {filtered && (
          <button
            type="button"
            className="btn btn-small btn-ghost"
            onClick={() => {
              setSymbol("");
              setSide("");
              setStatus("");
              setStrategyInput("");
            }}
            data-testid="filter-clear"
          >
            Clear
          </button>
        )}
        <span className="spacer" />
        <span className="muted small">auto refresh 5 s</span>
      </div>
      <AsyncView poll={orders} isEmpty={(p) => p.items.length === 0} emptyText={filtered ? "No orders match these filters." : "No orders yet."}>
        {() => (
          <>
            <div className="table-wrap panel">
              <table className="table table-hover" data-testid="orders-table">
                <thead>
                  <tr>
                    {COLUMNS.map((c) => (
                      <SortHeader key={c.key} label={c.server ? c.label : `${c.label}*`} column={c.key} sort={sort} onSort={onSort} numeric={c.numeric} testPrefix="orders" />
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {rows.map((o) => (
                    <tr
                      key={o.client_order_id}
                      data-testid={`order-row-${o.client_order_id}`}
                      onClick={() => open(o.client_order_id)}
                      onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && open(o.client_order_id)}
                      tabIndex={0}
                      className="clickable"
                    >
                      <td className="nowrap">{fmtTime(o.created_ms)}</td>
                      <td className="sym">{o.symbol}</td>
                      <td>
                        <Badge tone={sideTone(String(o.side))}>{o.side}</Badge>
                      </td>
                      <td>{o.order_type ?? "—"}</td>
                      <td className="num">{fmtQty(o.quantity)}</td>
                      <td className="num">{o.price != null ? fmtPrice(o.price) : "market"}</td>
                      <td className="num">{fmtQty(o.filled_quantity)}</td>
                      <td className="num">{fmtPrice(o.avg_fill_price)}</td>
                      <td>
                        <Badge tone={orderStatusTone(String(o.status))}>{String(o.status).replace("_", " ")}</Badge>
                      </td>
                      <td>{o.strategy ?? "—"}</td>
                      <td className="nowrap">{fmtTime(o.updated_ms)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <div className="pager" data-testid="orders-pager">
              <span className="muted small">* sorted within the page shown</span>
              <span className="spacer" />
              <select value={pageSize} onChange={(e) => setPageSize(Number(e.target.value))} aria-label="Page size" data-testid="page-size">
                {PAGE_SIZES.map((n) => (
                  <option key={n} value={n}>
                    {n} / page
                  </option>
                ))}
              </select>
              <button type="button" className="btn btn-small" disabled={page <= 1} onClick={() => setPage((p) => p - 1)} data-testid="page-prev">
                ‹ Prev
              </button>
              <span data-testid="page-info">
                {page} / {pages} <span className="muted">({total})</span>
              </span>
              <button type="button" className="btn btn-small" disabled={page >= pages} onClick={() => setPage((p) => p + 1)} data-testid="page-next">
                Next ›
              </button>
            </div>
          </>
        )}
      </AsyncView>
      {openId && <OrderDetailModal clientOrderId={openId} onClose={() => open(null)} onClosed={orders.reload} />}
    </div>
  );
}
