import type { Api } from "./api.js";
import { h } from "./dom.js";

/** How many agents are fetched for names and suggestions: one page, the API's largest. */
const AGENTS_PAGE_SIZE = 1000;

/**
 * The caller's agents by id, for the agent column's tooltips and the create form's
 * suggestions (a <datalist>). Only a convenience: when listing fails, ids show without names.
 */
export class AgentDirectory {
  private names = new Map<string, string>();

  constructor(
    private readonly api: Api,
    private readonly datalist: HTMLDataListElement,
  ) {}

  nameOf(id: string): string | undefined {
    return this.names.get(id);
  }

  /** Fetches the newest agents; rejects with the RPC error. */
  async load(): Promise<void> {
    const { agents } = await this.api.agents.listAgents({ pageSize: AGENTS_PAGE_SIZE });
    this.names = new Map(agents.map((a) => [a.id, a.name]));
    this.datalist.replaceChildren(...agents.map((a) => h("option", { value: a.id, label: a.name })));
  }
}
