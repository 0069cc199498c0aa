import type { Session } from "../../gen/sessions/v1/session_pb.js";
import { errorText, fieldViolations, type Api } from "./api.js";
import { byTestId, showText } from "./dom.js";
import { parseTags } from "./format.js";

/** The form's fields by the proto path of the request field each one sets. */
const FIELDS = ["agent_id", "title", "tags"] as const;
type Field = (typeof FIELDS)[number];

/** The form field a violation belongs to: `tags[3]` → tags; undefined for fields the form has no input for. */
function formFieldOf(path: string): Field | undefined {
  const top = path.replace(/[.[].*$/, "");
  return (FIELDS as readonly string[]).includes(top) ? (top as Field) : undefined;
}

export interface CreateFormOptions {
  readonly api: Api;
  readonly onCreated: (session: Session) => void;
  readonly onError: (err: unknown) => void;
}

/**
 * Creates a session from agent, title and tags. Validation is the server's: its
 * google.rpc.BadRequest field violations are shown next to the fields they name.
 */
export class CreateForm {
  private readonly form = byTestId<HTMLFormElement>("create-form");
  private readonly inputs: Record<Field, HTMLInputElement> = {
    agent_id: byTestId("create-agent-id"),
    title: byTestId("create-title"),
    tags: byTestId("create-tags"),
  };
  private readonly errors: Record<Field, HTMLElement> = {
    agent_id: byTestId("error-agent_id"),
    title: byTestId("error-title"),
    tags: byTestId("error-tags"),
  };
  private readonly formError = byTestId("form-error");
  private readonly submit = byTestId<HTMLButtonElement>("create-submit");
  private readonly created = document.getElementById("created")!;
  private readonly createdId = byTestId<HTMLAnchorElement>("created-session-id");

  constructor(private readonly options: CreateFormOptions) {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.create();
    });
  }

  private async create(): Promise<void> {
    this.showViolations([]);
    showText(this.formError, "");
    this.created.hidden = true;
    this.submit.disabled = true;
    try {
      const session = await this.options.api.sessions.createSession({
        agentId: this.inputs.agent_id.value.trim(),
        title: this.inputs.title.value,
        tags: parseTags(this.inputs.tags.value),
      });
      this.createdId.textContent = session.id;
      this.createdId.href = `#/sessions/${session.id}`;
      this.created.hidden = false;
      this.inputs.title.value = "";
      this.inputs.tags.value = "";
      this.options.onCreated(session);
    } catch (err) {
      const violations = fieldViolations(err);
      const unplaced = this.showViolations(violations);
      // Without violations for the form's own fields, the message itself says what went wrong.
      const general = violations.length === 0 ? [errorText(err)] : unplaced;
      showText(this.formError, general.join("\n"));
      this.options.onError(err);
    } finally {
      this.submit.disabled = false;
    }
  }

  /** Shows each violation by its field; returns those the form has no field for (e.g. `request_id`). */
  private showViolations(violations: readonly { field: string; description: string }[]): string[] {
    const byField = new Map<Field, string[]>();
    const unplaced: string[] = [];
    for (const v of violations) {
      const field = formFieldOf(v.field);
      if (field) byField.set(field, [...(byField.get(field) ?? []), v.description]);
      else unplaced.push(v.description);
    }
    for (const field of FIELDS) {
      const descriptions = byField.get(field) ?? [];
      showText(this.errors[field], descriptions.join("\n"));
      this.inputs[field].setAttribute("aria-invalid", String(descriptions.length > 0));
    }
    return unplaced;
  }
}
