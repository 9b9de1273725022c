// Log levels in stacking order (bottom first) and their colours; the CSS uses the same names.
export const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "other"];
export const COLOURS = {
  fatal: "#8e24aa", error: "#d32f2f", warn: "#f29900", info: "#1e88e5",
  debug: "#6d7a86", trace: "#a0aab4", other: "#26a69a",
};
export const levelName = (level) => (LEVELS.includes(level) && level !== "other" ? level : "other");
