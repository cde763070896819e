// Every text from the server (patient names arrive from modalities) becomes a text node, never
// markup: building the page through h() is what keeps it escaped.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') {
      element.addEventListener(name.replace(/^on/, ''), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent: Node, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element: Element): void {
  while (element.firstChild) element.removeChild(element.firstChild);
}

/** Run ``task`` after the next frame is painted (a task queued from a requestAnimationFrame
 * callback runs after that frame's paint), or after 250 ms where no frame comes (a tab in the
 * background gets no animation frames); ``painted`` says which. */
export function afterPaint(task: (painted: boolean) => void): void {
  let done = false;
  const once = (painted: boolean) => {
    if (!done) task(painted);
    done = true;
  };
  requestAnimationFrame(() => window.setTimeout(() => once(true), 0));
  window.setTimeout(() => once(false), 250);
}
