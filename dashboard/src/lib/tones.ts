// Which colour a state gets, in one place so every page agrees.
export function botTone(state: string | undefined): string {
  switch (state) {
    case "running":
      return "good";
    case "paused":
    case "starting":
      return "warn";
    case "halted":
      return "bad";
    default:
      return "neutral";
  }
}

export function orderStatusTone(status: string | undefined): string {
  switch (status) {
    case "Filled":
      return "good";
    case "Placed":
    case "Partially_Filled":
    case "Pending":
      return "info";
    case "Rejected":
    case "Failed":
      return "bad";
    default:
      return "neutral";
  }
}

export function sideTone(side: string | undefined): string {
  return side === "Buy" ? "good" : side === "Sell" ? "bad" : "neutral";
}

export function breakerTone(state: string | undefined): string {
  return state === "closed" ? "good" : state === "open" ? "bad" : "warn";
}

export function severityTone(severity: string | undefined): string {
  switch (severity) {
    case "none":
      return "good";
    case "low":
      return "info";
    case "medium":
      return "warn";
    case "high":
      return "bad";
    default:
      return "neutral";
  }
}

export const ACTIVE_STATUSES = new Set(["Pending", "Placed", "Partially_Filled"]);
