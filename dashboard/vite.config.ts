/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The daemon serves the API, the WebSocket and the built dashboard on one origin; in development
// Vite serves the pages and forwards everything else to a daemon running beside it.
// DAEMON_URL overrides the address (read without @types/node, the config's only use of the environment).
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const DAEMON = env.DAEMON_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 700,
    rollupOptions: {
      output: {
        // Libraries change rarely: in chunks of their own they stay cached across dashboard releases.
        manualChunks(id: string) {
          if (!id.includes("node_modules")) return undefined;
          if (id.includes("lightweight-charts") || id.includes("fancy-canvas")) return "charts";
          return "vendor";
        },
      },
    },
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: DAEMON, changeOrigin: true },
      "/ws": { target: DAEMON, changeOrigin: true, ws: true },
      "/health": { target: DAEMON, changeOrigin: true },
      "/ready": { target: DAEMON, changeOrigin: true },
      "/metrics": { target: DAEMON, changeOrigin: true },
      "/docs": { target: DAEMON, changeOrigin: true },
      "/openapi.json": { target: DAEMON, changeOrigin: true },
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
