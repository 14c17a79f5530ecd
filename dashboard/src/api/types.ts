// Shapes of the daemon's API, mirroring trading_daemon/api/models.py, models_ml.py, models_ops.py and the
// routes in trading_daemon/api/routes/. Money arrives as strings (Python Decimal) and is only formatted or
// turned into a display ratio; market data (prices in books, candles, metrics) arrives as floats.
// Fields a page can do without are optional, so a page survives a field the server leaves out.

/** A Decimal as the API sends it. Numbers are tolerated too. */
export type Dec = string | number;
/** Milliseconds since the epoch, UTC. */
export type Ms = number;

export type Role = "viewer" | "trader" | "admin";

// ---- auth (routes/auth.py) ----
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type?: string;
  expires_in?: number;
  refresh_expires_in?: number;
  username: string;
  role: Role;
}

export interface VerifyResponse {
  user_id?: number;
  username: string;
  role: Role;
  expires_at_ms?: Ms;
}

// ---- bot (routes/bot.py) ----
export type BotState = "starting" | "recording" | "running" | "paused" | "halted";

export interface KillSwitchState {
  engaged: boolean;
  reason?: string | null;
}

export interface BotStatus {
  state: BotState | string;
  ready?: boolean;
  trading_enabled?: boolean;
  venue?: string;
  rest_url?: string;
  symbols?: string[];
  started_ms?: Ms;
  uptime_s?: number;
  paused_reason?: string | null;
  kill_switch?: KillSwitchState;
  reconciled?: boolean | null;
  holds?: Record<string, string>;
  model_version?: string | null;
  model_fallback?: string | null;
  rows_recorded?: number;
  recorder_state?: string;
}

export interface BotAction {
  changed: boolean;
  status?: BotStatus;
}

export interface KillSwitchResult {
  engaged: boolean;
  reason?: string | null;
  cancelled?: string[];
  flattened?: Array<Record<string, unknown>>;
  errors?: string[];
}

// ---- market data (routes/data.py, routes/market.py) ----
export interface Pair {
  symbol: string;
  last_price?: number | null;
  mid?: number | null;
  spread_bps?: number | null;
  change_24h_pct?: number | null;
  volume_24h?: number | null;
  turnover_24h?: number | null;
  book_valid?: boolean;
  rows?: number;
}

export type BookLevel = [number, number];

export interface OrderBook {
  symbol: string;
  valid?: boolean;
  ts?: Ms | null;
  update_id?: number | null;
  bids: BookLevel[];
  asks: BookLevel[];
  mid?: number | null;
  spread_bps?: number | null;
  depth?: [number, number];
}

/** The screener's columns (models.SymbolMetrics); the screener shows a subset. */
export interface SymbolMetrics {
  symbol: string;
  ts?: Ms;
  valid?: boolean;
  last_price?: number | null;
  mid?: number | null;
  micro_price?: number | null;
  best_bid?: number | null;
  best_ask?: number | null;
  spread?: number | null;
  spread_bps?: number | null;
  imbalance_1?: number | null;
  imbalance_5?: number | null;
  imbalance_10?: number | null;
  imbalance_20?: number | null;
  imbalance_total?: number | null;
  order_flow_imbalance?: number | null;
  buy_sell_ratio?: number | null;
  support?: number | null;
  resistance?: number | null;
  volume_1m?: number | null;
  turnover_1m?: number | null;
  trades_1m?: number | null;
  trade_rate?: number | null;
  volatility_1s_bps?: number | null;
  volatility_1m_bps?: number | null;
  change_24h_pct?: number | null;
  high_24h?: number | null;
  low_24h?: number | null;
  volume_24h?: number | null;
  turnover_24h?: number | null;
  volatility_24h_pct?: number | null;
  trades_24h?: number | null;
}

export interface Candle {
  ts: Ms; // the candle's start
  open: Dec;
  high: Dec;
  low: Dec;
  close: Dec;
  volume?: Dec;
  turnover?: Dec;
}

// ---- trading (routes/trading.py) ----
export type Side = "Buy" | "Sell";
export type OrderStatus = "Pending" | "Placed" | "Partially_Filled" | "Filled" | "Cancelled" | "Rejected" | "Failed";

export interface Balance {
  currency?: string;
  equity: Dec | null;
  available?: Dec | null;
  wallet_balance?: Dec | null;
  unrealized_pnl?: Dec | null;
  realized_pnl_today?: Dec | null;
  updated_ms?: Ms | null;
}

export interface Position {
  id?: number | null;
  symbol: string;
  side: Side | string;
  status?: string;
  quantity: Dec;
  entry_price: Dec;
  exit_price?: Dec | null;
  mark_price?: number | null;
  unrealized_pnl?: Dec | null;
  unrealized_pnl_pct?: number | null;
  realized_pnl?: Dec | null;
  fees_paid?: Dec | null;
  stop_loss?: Dec | null;
  take_profit?: Dec | null;
  entry_reason?: string | null;
  exit_reason?: string | null;
  opened_ms?: Ms | null;
  closed_ms?: Ms | null;
  updated_ms?: Ms;
}

export interface Order {
  id?: number | null;
  client_order_id: string;
  exchange_order_id?: string | null;
  symbol: string;
  side: Side | string;
  order_type?: string;
  time_in_force?: string;
  status: OrderStatus | string;
  quantity: Dec;
  price?: Dec | null;
  filled_quantity?: Dec;
  avg_fill_price?: Dec | null;
  reduce_only?: boolean;
  stop_loss?: Dec | null;
  take_profit?: Dec | null;
  position_id?: number | null;
  strategy?: string | null;
  reason?: string | null;
  error_message?: string | null;
  created_ms?: Ms;
  updated_ms?: Ms;
}

export interface OrderStats {
  total: number;
  active: number;
  filled: number;
  cancelled: number;
  rejected?: number;
  failed?: number;
}

export interface OrderPage {
  items: Order[];
  total: number;
  page: number;
  page_size: number;
  stats?: OrderStats;
}

/** Columns the server sorts orders by (infra/db/repositories/orders.py SORTABLE). */
export type OrderSortKey = "created" | "updated" | "symbol" | "side" | "quantity" | "price" | "status" | "filled";

export interface OrderQuery {
  symbol?: string;
  side?: string;
  status?: string;
  active?: boolean;
  strategy?: string;
  sort?: OrderSortKey;
  direction?: "asc" | "desc";
  page?: number;
  page_size?: number;
}

export interface Fill {
  exec_id: string;
  symbol?: string;
  side: Side | string;
  price: Dec;
  quantity: Dec;
  fee?: Dec;
  ts: Ms;
  is_maker?: boolean;
  client_order_id?: string | null;
  closed_pnl?: Dec | null;
}

export interface OrderEvent {
  ts: Ms;
  from_status?: string | null;
  to_status: string;
  reason?: string | null;
}

export interface OrderDetail {
  order: Order;
  fills?: Fill[];
  events?: OrderEvent[];
  position?: Position | null;
  mark_price?: number | null;
  live_pnl?: Dec | null;
  live_pnl_pct?: number | null;
}

export interface CloseResult {
  client_order_id?: string | null;
  accepted: boolean;
  status?: string | null;
  message: string;
}

export interface Signal {
  id?: number | null;
  symbol: string;
  ts: Ms;
  source: string;
  action: "Buy" | "Sell" | "Hold" | string;
  strength?: number;
  confidence?: number | null;
  price?: Dec | null;
  model_version?: string | null;
  reason?: string | null;
  context?: Record<string, unknown> | null;
}

/** The risk manager's state (trading_daemon/risk/manager.py `state`). */
export interface RiskStatus {
  limits?: Record<string, unknown>;
  /** symbol -> null when healthy, else the rule halting its entries. */
  health?: Record<string, { rule: string; detail?: string } | null>;
  /** symbol -> the standing rule halting entries. */
  halted?: Record<string, string>;
  approvals?: number;
  refusals?: Record<string, number>;
  recent_refusals?: Array<Record<string, unknown>>;
  reserved?: Record<string, unknown>;
  reconciled?: boolean;
  open_positions?: number;
  exposure_usdt?: Dec;
  exposure_by_symbol?: Record<string, Dec>;
  daily_pnl_usdt?: Dec;
  equity?: Dec | null;
}

export type ExecutionStats = Record<string, unknown>;

// ---- monitoring (routes/monitoring.py, models_ops.py) ----
export interface CircuitBreaker {
  name: string;
  state: "closed" | "open" | "half_open" | string;
  failure_count?: number;
  failure_threshold?: number;
  cooldown_seconds?: number;
  retry_after?: number;
  last_failure?: string | null;
}

export interface ReconciliationSummary {
  trigger?: string;
  started_ms?: Ms;
  finished_ms?: Ms;
  success?: boolean;
  attempts?: number;
  discrepancies?: number;
  error?: string | null;
  [key: string]: unknown;
}

export interface RecoveryStatus {
  running?: boolean;
  reconciled?: boolean;
  holds?: Record<string, string>;
  hanging_orders?: number;
  last_reconciliation?: ReconciliationSummary | null;
  recent_runs?: Array<{ id?: number | null; trigger: string; started_ms: Ms; finished_ms: Ms; success: boolean; error?: string | null }>;
  fsm?: Record<string, unknown>;
  settings?: Record<string, unknown>;
}

export interface RateLimiter {
  bucket: string;
  tokens: number;
  max_tokens: number;
  utilization: number;
  refill_rate?: number;
  blocked_for?: number;
  exchange_limit?: number | null;
  exchange_remaining?: number | null;
}

// ---- ML (routes/ml.py, models_ml.py) ----
export interface HorizonMetrics {
  horizon_s: number;
  n?: number | null;
  accuracy?: number | null;
  macro_f1?: number | null;
  log_loss?: number | null;
  ece?: number | null;
  /** Counts [true class][predicted class]; only in a version's detail. */
  confusion_matrix?: number[][] | null;
}

export interface DataWindow {
  symbols?: string[];
  start_ms?: Ms;
  end_ms?: Ms;
  n_train?: number;
  n_validation?: number;
  n_test?: number;
}

export interface ModelSummary {
  version: string;
  model_type?: string;
  status?: "candidate" | "production" | "archived" | "rejected" | string;
  created_ms?: Ms;
  feature_spec_hash?: string;
  definitions_version?: number;
  horizons_s?: number[];
  parent_version?: string | null;
  data_window?: DataWindow;
  metrics?: HorizonMetrics[];
  promotion_metric?: string;
  promotion_value?: number | null;
  backtest?: Record<string, number>;
}

export interface LossCurve {
  epochs?: number[];
  train_loss?: number[];
  val_loss?: number[];
  learning_rate?: number[];
  best_epoch?: number | null;
  stopped_early?: boolean;
}

export interface GateDecision {
  id?: number;
  decided_ms?: Ms;
  promoted: boolean;
  metric?: string;
  candidate_value?: number | null;
  candidate_low?: number | null;
  candidate_high?: number | null;
  production_version?: string | null;
  reason?: string;
  details?: Record<string, unknown>;
}

export interface ModelDetail extends ModelSummary {
  artifact_sha256?: string;
  code_version?: string;
  run_model?: string | null;
  train_seconds?: number | null;
  class_names?: string[];
  baselines?: Record<string, HorizonMetrics[]>;
  loss_curve?: LossCurve | null;
  backtest_summary?: Record<string, unknown> | null;
  evidence_error?: string | null;
  gate_decisions?: GateDecision[];
}

export interface ServedModel {
  version: string;
  model_type?: string;
  created_ms?: Ms;
  loaded_ms?: Ms;
  age_hours?: number;
  artifact_sha256?: string;
  horizons_s?: number[];
}

export interface MlStatus {
  production?: ServedModel | null;
  shadow?: ServedModel | null;
  stale?: boolean;
  fallback_reason?: string | null;
  fallback_detail?: string | null;
  row_predictions?: number;
  row_fallbacks?: Record<string, number>;
  verdicts_total?: Record<string, number>;
  rates?: {
    validations?: number;
    agreement_rate?: number;
    disagreement_rate?: number;
    neutral_rate?: number;
    fallback_rate?: number;
  };
  inference?: Record<string, { count: number; p50_ms?: number | null; p99_ms?: number | null }>;
  refused?: Record<string, string>;
  last_reload_ms?: Ms | null;
  registry_production?: ModelSummary | null;
}

export interface MlProduction {
  production?: ModelSummary | null;
  shadow?: ModelSummary | null;
  serving?: string | null;
}

export interface ReloadResult {
  trigger?: string;
  production_before?: string | null;
  production?: string | null;
  shadow_before?: string | null;
  shadow?: string | null;
  changed: boolean;
  refused?: Record<string, string>;
}

export type Severity = "none" | "low" | "medium" | "high";

export interface DriftReport {
  id: number;
  partition_key?: string;
  symbol: string;
  window_start_ms?: Ms;
  window_end_ms?: Ms;
  production_version?: string | null;
  severity: Severity | string;
  feature_drift_score?: number | null;
  prediction_psi?: number | null;
  accuracy_drop?: number | null;
  drivers?: string[];
  drifted_features?: string[];
  recommendation?: string;
  html_path?: string;
  dagster_run_id?: string | null;
  created_ms?: Ms;
}

export interface DriftPoint {
  id?: number;
  symbol: string;
  window_start_ms?: Ms;
  window_end_ms: Ms;
  created_ms?: Ms;
  severity: Severity | string;
  severity_level?: number;
  feature_drift_score?: number | null;
}

export interface DriftHistory {
  symbol?: string | null;
  since_ms?: Ms;
  /** Oldest first, by the end of each report's window. */
  points: DriftPoint[];
}

export interface RetrainingRun {
  id?: number;
  dagster_run_id?: string;
  dagster_run_url?: string | null;
  trigger: "drift" | "schedule" | "manual" | string;
  status: "promoted" | "kept" | "failed" | string;
  reason?: string;
  drift_report_ids?: number[];
  candidate_version?: string | null;
  production_version_before?: string | null;
  metric?: string | null;
  candidate_value?: number | null;
  production_value?: number | null;
  symbols?: string[];
  window_start_ms?: Ms | null;
  window_end_ms?: Ms | null;
  created_ms?: Ms;
}

// ---- detection (routes/detection.py) ----
export interface SymbolDetection {
  symbol: string;
  last_ts?: Ms;
  detections?: Record<string, number>;
  blocked_by?: string | null;
  blocked_until_ms?: Ms | null;
  levels?: number;
  errors?: number;
}

export interface DetectionStatus {
  enabled?: boolean;
  symbols?: SymbolDetection[];
  active_manipulations?: number;
  errors?: number;
}

export interface Level {
  kind: "support" | "resistance" | string;
  price: number;
  price_low?: number;
  price_high?: number;
  strength?: number;
  touches?: number;
  broken_ms?: Ms | null;
}

export interface Levels {
  symbol: string;
  computed_ms?: Ms | null;
  levels: Level[];
}

// ---- strategies (routes/strategies.py) ----
export interface StrategyStatistics {
  strategy?: string;
  enabled?: boolean;
  signals?: number;
  signals_below_cost?: number;
  measured?: number;
  trades?: number;
  wins?: number;
  maker_trades?: number;
  taker_trades?: number;
  gross_pnl?: Dec;
  fees?: Dec;
  net_pnl?: Dec;
  maker_net_pnl?: Dec;
  taker_net_pnl?: Dec;
  last_trade_ms?: Ms;
  updated_ms?: Ms;
  hit_rate?: number | null;
  measured_mean_bps?: number | null;
  measured_hit_rate?: number | null;
}

export interface Strategy {
  name: string;
  enabled: boolean;
  weight?: number;
  entry_style?: string;
  max_hold_s?: number;
  hit_rate?: number | null;
  measured_mean_bps?: number | null;
  failures?: number;
  statistics?: StrategyStatistics;
}

export interface StrategiesOverview {
  consensus_mode?: string;
  min_strategies?: number;
  min_consensus_confidence?: number;
  taker_fee_bps?: number;
  maker_fee_bps?: number;
  min_expected_edge_bps?: number;
  strategies: Strategy[];
  consensus?: StrategyStatistics;
  rows_with_votes?: number;
  rows_with_consensus?: number;
  consensus_rate?: number | null;
}

export interface StrategyToggle {
  changed: boolean;
  strategy: Strategy;
}

// ---- health (routes/health.py) ----
export interface Health {
  status?: string;
  uptime_s?: number;
}

export interface Ready {
  ready: boolean;
  checks?: Record<string, { ok: boolean; detail: string }>;
}

// ---- WebSocket (hub.py) ----
export type Topic = "book" | "metrics" | "signal" | "order" | "fill" | "position" | "model" | "bot" | "drift" | "health";

export interface WsMessage<T = unknown> {
  seq?: number;
  topic: Topic | "hello" | "subscribed" | "error" | "pong" | string;
  ts?: Ms;
  data: T;
  /** The latest message of a state topic, sent on connecting or subscribing; not part of the live order. */
  snapshot?: boolean;
}

export type ConnectionState = "connected" | "reconnecting" | "offline";
