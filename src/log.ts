import { writeSync } from "node:fs";
import { pino, type Logger } from "pino";
import { prettyFactory } from "pino-pretty";
import type { LogLevel } from "./config.js";

export type { Logger };

/**
 * Logs on standard error, so that standard output carries only the one "listening on"
 * line that scripts wait for: JSON lines, or, when standard error is a terminal (a person
 * watching `npm start`), the same records made readable by pino-pretty — colours, local
 * time, one line per record (an error's stack below it).
 */
export function createLogger(level: LogLevel, terminal = process.stderr.isTTY === true): Logger {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (!terminal) return pino(options, pino.destination(2));
  // Formatted and written synchronously, as pino.destination(2) writes: the lines logged
  // just before process.exit (on a stop) are not lost, as they could be with pino-pretty's
  // own asynchronous stream.
  const prettify = prettyFactory({ colorize: true, translateTime: "SYS:HH:MM:ss.l", singleLine: true });
  return pino(options, { write: (line: string) => void writeSync(2, prettify(line)) });
}
