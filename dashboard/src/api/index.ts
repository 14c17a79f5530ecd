// The dashboard's whole conversation with the daemon: HTTP (client, endpoints), the live socket (ws)
// and the shapes of both (types).
export { api, asList, asSymbolMap } from "./endpoints";
export {
  ApiError,
  clearAuth,
  errorMessage,
  getAuth,
  onAuthChange,
  refreshTokens,
  type StoredAuth,
} from "./client";
export { LiveClient, backoffDelay, defaultWsUrl, type TopicHandler } from "./ws";
export type * from "./types";
