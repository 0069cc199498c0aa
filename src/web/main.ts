// The sessions console: a table of sessions with paging and a status filter, a create
// form, a usage chart, and a live view of one session (#/sessions/<id>), over Connect or
// gRPC-Web (?transport=), against this origin or ?api=.
import "./style.css";
import { AgentDirectory } from "./agents.js";
import { createApi, isUnauthenticated, readSettings } from "./api.js";
import { ApiKeyPrompt } from "./api-key-prompt.js";
import { CreateForm } from "./create-form.js";
import { byTestId, showText } from "./dom.js";
import { SessionDetail } from "./session-detail.js";
import { SessionsTable } from "./sessions-table.js";
import { LiveUsageChart, PageUsageChart } from "./usage-chart.js";

const settings = readSettings(location);
const api = createApi(settings);
byTestId("transport-name").textContent = settings.transport;
document.getElementById("api-base")!.textContent = settings.baseUrl;
showText(document.getElementById("settings-warnings")!, settings.warnings.join("\n"));

const listView = document.getElementById("list-view")!;
const agents = new AgentDirectory(api, document.getElementById("agent-options") as HTMLDataListElement);
const agentName = (id: string) => agents.nameOf(id);
const keyPrompt = new ApiKeyPrompt(() => void reload());
const onError = (err: unknown) => {
  if (isUnauthenticated(err)) keyPrompt.ask(err);
};

const pageChart = new PageUsageChart(byTestId<HTMLCanvasElement>("usage-chart"));
const table = new SessionsTable({
  api,
  pageSize: settings.pageSize,
  agentName,
  onPage: (sessions) => pageChart.show(sessions),
  onError,
});
new CreateForm({ api, onCreated: () => void table.showCreated(), onError });
const detail = new SessionDetail({
  api,
  chart: new LiveUsageChart(document.getElementById("detail-usage-chart") as HTMLCanvasElement),
  agentName,
  onError,
});

/** The session id of a `#/sessions/<id>` route, else undefined (the list). */
function routedSessionId(): string | undefined {
  const match = /^#\/sessions\/([^/?#]+)$/.exec(location.hash);
  if (!match) return undefined;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return undefined;
  }
}

function route(moveFocus: boolean): void {
  const id = routedSessionId();
  listView.hidden = id !== undefined;
  if (id === undefined) {
    detail.close();
    document.title = "Sessions console";
    void table.refresh();
  } else {
    detail.open(id);
    document.title = `${id} · Sessions console`;
  }
  // A screen reader user hears the view change, as with a page load.
  if (moveFocus) document.getElementById(id === undefined ? "sessions-heading" : "detail-title")!.focus();
}

/** Agent names first (the table's tooltips use them), then what the current view shows. */
async function reload(): Promise<void> {
  await agents.load().catch(onError);
  if (routedSessionId() === undefined) await table.firstPage();
  else detail.rewatch();
}

window.addEventListener("hashchange", () => route(true));
void agents
  .load()
  .catch(onError)
  .then(() => route(false));
