/**
 * What the measured requests refer to, made over REST as a user would: an agent, a
 * session, and a page token deep in the listing.
 */

const json = { "content-type": "application/json" };

async function post(url: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(url, { method: "POST", headers: json, body: JSON.stringify(body) });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`POST ${url}: ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

export async function createAgent(baseUrl: string): Promise<string> {
  const agent = await post(`${baseUrl}/v1/agents`, { name: "bench", default_model_id: "model_0123456789abcdef0123456789abcdef" });
  return agent.id as string;
}

export async function createSession(baseUrl: string, agentId: string, title: string): Promise<string> {
  const session = await post(`${baseUrl}/v1/sessions`, { agent_id: agentId, title, tags: ["bench"] });
  return session.id as string;
}

export interface DeepPage {
  readonly token: string;
  /** How many pages of `pageSize` come before the page the token opens. */
  readonly pagesDeep: number;
  readonly position: number;
}

/**
 * The page token that opens page `pages + 1` of `pageSize`, found by paging once with
 * large pages (page size is not part of the token, AIP-158). Never deeper than leaves a
 * full page after it, so the deep page costs a full page's work.
 */
export async function deepPageToken(baseUrl: string, pageSize: number, pages: number, totalSessions: number): Promise<DeepPage> {
  const pagesDeep = Math.max(1, Math.min(pages, Math.floor(totalSessions / pageSize) - 1));
  const position = pagesDeep * pageSize;
  let token = "";
  for (let seen = 0; seen < position; ) {
    const size = Math.min(1000, position - seen);
    const url = `${baseUrl}/v1/sessions?page_size=${size}${token ? `&page_token=${encodeURIComponent(token)}` : ""}`;
    const response = await fetch(url);
    const text = await response.text();
    if (response.status !== 200) throw new Error(`GET ${url}: ${response.status} ${text}`);
    const page = JSON.parse(text) as { sessions: unknown[]; next_page_token: string };
    seen += page.sessions.length;
    token = page.next_page_token;
    if (token === "" && seen < position) throw new Error(`the listing ended after ${seen} sessions, before position ${position}`);
  }
  return { token, pagesDeep, position };
}
