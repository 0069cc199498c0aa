import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import type { Session } from "../../gen/sessions/v1/session_pb.js";
import { clockTime, tokenCounts, type TokenCounts } from "./format.js";

// Only what the two charts use, so the rest of Chart.js stays out of the bundle.
Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Legend, Tooltip);

/** The four counters, in the order they stack, with colours that stay apart for colour-blind readers (Tableau 10). */
const SERIES: readonly { readonly key: keyof TokenCounts; readonly label: string; readonly color: string }[] = [
  { key: "input", label: "Input", color: "#4e79a7" },
  { key: "output", label: "Output", color: "#f28e2b" },
  { key: "cacheRead", label: "Cache read", color: "#59a14f" },
  { key: "cacheWrite", label: "Cache write", color: "#b07aa1" },
];

/** Most points the live chart keeps; older ones scroll out. */
const LIVE_POINTS = 500;

const legendAndAxes = (stacked: boolean) => ({
  // Updates come often on the live chart; animating each one only blurs them.
  animation: false as const,
  responsive: true,
  maintainAspectRatio: false,
  interaction: { mode: "index" as const, intersect: false },
  plugins: { legend: { position: "bottom" as const } },
  scales: {
    x: { stacked },
    // Tokens come whole: without a precision, an axis of zeros (no usage yet) reads 0.1, 0.2…
    y: { stacked, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "tokens" } },
  },
});

/** A short label for a session on the x axis: its title, else the end of its id (where ids differ). */
function sessionLabel(session: Session): string {
  const title = session.title.trim();
  if (title === "") return `…${session.id.slice(-6)}`;
  return title.length > 24 ? `${title.slice(0, 23)}…` : title;
}

/** Token use per session of the current page, the four counters stacked. */
export class PageUsageChart {
  private readonly chart: Chart<"bar", number[], string>;

  constructor(canvas: HTMLCanvasElement) {
    this.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: [],
        datasets: SERIES.map((s) => ({ label: s.label, data: [], backgroundColor: s.color })),
      },
      options: legendAndAxes(true),
    });
  }

  show(sessions: readonly Session[]): void {
    const counts = sessions.map((s) => tokenCounts(s.usage));
    this.chart.data.labels = sessions.map(sessionLabel);
    SERIES.forEach((s, i) => (this.chart.data.datasets[i]!.data = counts.map((c) => c[s.key])));
    this.chart.update();
  }
}

/** One session's cumulative usage, a point per update received while watching. */
export class LiveUsageChart {
  private readonly chart: Chart<"line", number[], string>;

  constructor(canvas: HTMLCanvasElement) {
    this.chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: [],
        datasets: SERIES.map((s) => ({ label: s.label, data: [], borderColor: s.color, backgroundColor: s.color })),
      },
      options: legendAndAxes(false),
    });
  }

  clear(): void {
    this.chart.data.labels = [];
    for (const dataset of this.chart.data.datasets) dataset.data = [];
    this.chart.update();
  }

  add(session: Session): void {
    const labels = this.chart.data.labels!;
    const counts = tokenCounts(session.usage);
    labels.push(clockTime(session.updatedAt));
    SERIES.forEach((s, i) => this.chart.data.datasets[i]!.data.push(counts[s.key]));
    if (labels.length > LIVE_POINTS) {
      labels.shift();
      for (const dataset of this.chart.data.datasets) dataset.data.shift();
    }
    this.chart.update();
  }
}
