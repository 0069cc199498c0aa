import { errorText } from "./api.js";
import { forgetApiKey, storeApiKey, storedApiKey } from "./api-key-store.js";
import { byTestId, showText } from "./dom.js";

/**
 * The API key form, shown when a call fails with unauthenticated, and the "forget key"
 * button, shown while a key is stored. Either change calls `onKeyChange`, which reloads
 * what the page shows.
 */
export class ApiKeyPrompt {
  private readonly form = byTestId<HTMLFormElement>("api-key-form");
  private readonly input = byTestId<HTMLInputElement>("api-key-input");
  private readonly forget = byTestId<HTMLButtonElement>("api-key-forget");
  private readonly reason = document.getElementById("api-key-reason")!;

  constructor(private readonly onKeyChange: () => void) {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.forget.addEventListener("click", () => {
      forgetApiKey();
      this.refreshForget();
      this.onKeyChange();
    });
    this.refreshForget();
  }

  /** Asks for a key, saying why: none was given, or the one given was refused. */
  ask(err: unknown): void {
    const stored = storedApiKey() !== undefined;
    showText(
      this.reason,
      stored
        ? `The server refused the stored key (${errorText(err)}). Enter another key.`
        : `This server requires an API key (${errorText(err)}).`,
    );
    const wasHidden = this.form.hidden;
    this.form.hidden = false;
    if (wasHidden) this.input.focus();
  }

  private submit(): void {
    const key = this.input.value.trim();
    if (key === "") {
      showText(this.reason, "Enter an API key (sk_…).");
      return;
    }
    if (!storeApiKey(key)) {
      showText(this.reason, "This browser refuses to keep the key (sessionStorage is unavailable).");
      return;
    }
    this.input.value = "";
    this.form.hidden = true;
    this.refreshForget();
    this.onKeyChange();
  }

  private refreshForget(): void {
    this.forget.hidden = storedApiKey() === undefined;
  }
}
