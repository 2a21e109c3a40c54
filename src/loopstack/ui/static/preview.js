// A preview of one artifact inside the run's page: an image as an image, a CSV or TSV
// file as a table of its first rows, text as text; other files are for downloading.
import { h, replace } from "./dom.js";

const IMAGES = new Set(["png", "jpg", "jpeg", "gif", "webp", "bmp", "svg"]);
const TABLES = { csv: ",", tsv: "\t" };
const TEXTS = new Set(["txt", "log", "md", "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg", "py", "xml", "html", "sql", "sh", "r"]);
const TEXT_NAMES = new Set(["MLmodel", "requirements.txt", "LICENSE", "README", "Dockerfile"]);
export const PREVIEW_UP_TO = 5 * 1024 * 1024; // bytes fetched for a preview, at most
const TEXT_SHOWN = 200_000; // characters of a text shown
const ROWS_SHOWN = 50;

/** What kind of preview a file name gets: "image", "table", "text" or null. */
export function previewKind(path) {
  const name = path.split("/").pop();
  const ext = name.includes(".") ? name.split(".").pop().toLowerCase() : "";
  if (IMAGES.has(ext)) return "image";
  if (ext in TABLES) return "table";
  if (TEXTS.has(ext) || TEXT_NAMES.has(name)) return "text";
  return null;
}

/** Rows of delimited text: quoted fields ("a, b", "say ""hi""") and newlines in quotes. */
export function parseDelimited(text, delimiter, maxRows) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === delimiter) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if ((field !== "" || row.length) && rows.length < maxRows) rows.push([...row, field]);
  return rows;
}

/** Fill `panel` with a preview of `blob`, a file at `path`. */
export async function showPreview(panel, path, blob) {
  const kind = previewKind(path);
  const title = h("h3", { class: "mono" }, path);
  if (kind === "image") {
    const url = URL.createObjectURL(blob);
    const img = h("img", { src: url, alt: path, class: "preview-image" });
    img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    replace(panel, title, img);
    return;
  }
  const text = await blob.text();
  if (kind === "table") {
    const [head = [], ...rows] = parseDelimited(text, TABLES[path.split(".").pop().toLowerCase()], ROWS_SHOWN + 1);
    replace(
      panel,
      title,
      h("table", { class: "grid preview-table" },
        h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))),
      rows.length === ROWS_SHOWN ? h("p", { class: "muted" }, `the first ${ROWS_SHOWN} rows`) : null,
    );
    return;
  }
  replace(
    panel,
    title,
    h("pre", { class: "preview-text" }, text.slice(0, TEXT_SHOWN)),
    text.length > TEXT_SHOWN ? h("p", { class: "muted" }, `the first ${TEXT_SHOWN} characters of ${text.length}`) : null,
  );
}
