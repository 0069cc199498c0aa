/** The element with this data-testid, which index.html must contain; a missing one is a build mistake, so it throws. */
export function byTestId<T extends HTMLElement = HTMLElement>(testId: string, root: ParentNode = document): T {
  const element = root.querySelector<T>(`[data-testid="${testId}"]`);
  if (!element) throw new Error(`index.html has no element with data-testid="${testId}"`);
  return element;
}

/** A new element with attributes and children; text goes in as text nodes, never as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** Sets an element's text and hides it while the text is empty. */
export function showText(element: HTMLElement, text: string): void {
  element.textContent = text;
  element.hidden = text === "";
}

/** Tags as chips, space-separated so that the text reads "ci nightly". */
export function tagChips(tags: readonly string[]): (Node | string)[] {
  return tags.flatMap((tag, i) => [...(i > 0 ? [" "] : []), h("span", { class: "tag" }, tag)]);
}
