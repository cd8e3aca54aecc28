/** Markup that is already safe: only `html` makes it, so every interpolated value is escaped exactly once. */
export class Html {
  readonly #markup: string;

  constructor(markup: string) {
    this.#markup = markup;
  }

  toString(): string {
    return this.#markup;
  }
}

/** What a template may interpolate: text (escaped), safe markup (kept), or lists of them. */
export type Interpolation = Html | string | number | null | undefined | readonly Interpolation[];

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for element content and for quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ENTITIES[char] ?? char);
}

function render(value: Interpolation): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Html) return value.toString();
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value as string | number));
}

/**
 * A template tag: the literal parts are trusted markup, every interpolated value is escaped
 * unless it is `Html` made by this tag. Attribute values must be written in double quotes.
 */
export function html(literals: TemplateStringsArray, ...values: Interpolation[]): Html {
  let out = literals[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (literals[index + 1] ?? '');
  });
  return new Html(out);
}
