// The sse-llm chat demo: POST the prompt, read the answer as it streams, with no library.
//
// EventSource can only GET (no JSON body, no headers) and reconnects by itself when a stream
// ends, so a chat page reads the stream with fetch() and needs its own SSE parser:
// createSSEParser below is the part to copy.
//
// Model output is untrusted (prompt injection can steer it). The answer's Markdown is rendered
// by marked with the model's raw HTML escaped, then cleaned by DOMPurify with an allow-list
// (no images, links only http/https/mailto) before it reaches the page; both are vendored
// (examples/_vendor/markdown), so the page works offline. Without them it shows the text as
// written. Everything else the model or the provider says (sources, tool activity, errors) is
// inserted with textContent, never parsed as HTML, and a source becomes a link only if its
// URL is http(s).
"use strict";

/**
 * An incremental parser for a text/event-stream body (WHATWG HTML §9.2.6).
 *
 * Call the returned feed(text) with each piece of decoded text, in order, however the
 * network split it. onEvent({event, data, id}) runs once per complete event.
 */
function createSSEParser(onEvent) {
  let line = ""; // the text after the last line break: not a whole line yet
  let lastWasCR = false; // the previous piece ended in CR; an LF starting this one pairs with it
  let event = "";
  let data = null; // null until a data line arrives: an event without data is not dispatched
  let id = ""; // unlike event and data, the last event ID carries over to later events

  function processLine(text) {
    if (text === "") {
      // A blank line ends the event.
      if (data !== null) onEvent({ event: event || "message", data, id });
      event = "";
      data = null;
      return;
    }
    if (text[0] === ":") return; // a comment: the server's heartbeat
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1); // one space after the colon is syntax
    if (field === "data") data = data === null ? value : data + "\n" + value;
    else if (field === "event") event = value;
    else if (field === "id" && !value.includes("\0")) id = value;
    // "retry" only matters to EventSource reconnection; unknown fields are ignored.
  }

  return function feed(text) {
    if (text === "") return; // a read that ended inside a character: keep lastWasCR as is
    if (lastWasCR && text[0] === "\n") text = text.slice(1); // the LF of a CRLF split in two
    lastWasCR = text.endsWith("\r");
    if (!/[\r\n]/.test(text)) {
      // No line ends here: only this piece is searched, not the whole line again (a long
      // line read in small pieces would make every read cost the line so far).
      line += text;
      return;
    }
    // Lines end in CRLF, CR or LF; not in U+2028 and friends, so no split(/$/m) or similar.
    const lines = (line + text).split(/\r\n|\r|\n/);
    line = lines.pop();
    for (const complete of lines) processLine(complete);
  };
}

/**
 * POST the prompt and call onEvent for each event of the answer's stream.
 * Resolves when the stream ends; rejects with an AbortError when signal aborts.
 */
async function streamChat(url, prompt, onEvent, signal) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ prompt }),
    signal, // abort() closes the connection: the server sees a disconnect and stops the model
  });
  if (!response.ok) {
    throw new Error(`request failed: HTTP ${response.status} ${(await response.text()).slice(0, 200)}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8"); // SSE is always UTF-8 (WHATWG HTML §9.2.5)
  const feed = createSSEParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    // stream: true holds back the first bytes of a character split across two reads;
    // without it a Korean syllable or an emoji cut by the network turns into U+FFFD.
    feed(decoder.decode(value, { stream: true }));
  }
  feed(decoder.decode()); // flush (an unterminated last event is dropped, as the spec says)
}

// ---------------------------------------------------------------------------------- the page

const form = document.getElementById("chat-form");
const promptBox = document.getElementById("prompt");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const log = document.getElementById("log");
let controller = null; // the AbortController of the answer being streamed

function addElement(parent, tag, className, text = "") {
  const element = document.createElement(tag);
  if (className) element.className = className;
  element.textContent = text; // textContent: model output is never parsed as HTML
  parent.append(element);
  return element;
}

// ------------------------------------------------------------------------- safe Markdown

// What the sanitiser keeps: the tags CommonMark and GFM tables/strikethrough produce, minus
// img (an image the model was tricked into writing would send the conversation to a third
// party as soon as it loads). The same allow-list as sse-llm's server-side MarkdownRenderer.
const ALLOWED_TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
  "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
// Links: http, https, mailto, or relative (no scheme); javascript:, data: and the rest go.
const SAFE_URI = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;
const LANGUAGE_CLASS = /^language-[A-Za-z0-9_+#.-]{1,40}$/;

function escapeHTML(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/**
 * {render, blocks}, or null without the libraries: render(text) is the Markdown as a sanitised
 * DocumentFragment; blocks(text) is marked's block tokens of it, each with its `raw` text.
 */
function createMarkdown() {
  if (!window.marked || !window.DOMPurify || !DOMPurify.isSupported) return null;
  const parser = new marked.Marked({ gfm: true, breaks: false });
  // The model's own HTML (block or inline) is shown as text, never interpreted.
  parser.use({ renderer: { html: ({ text }) => escapeHTML(text) } });
  DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
    // class only as a code block's language-<name>.
    if (data.attrName === "class" && !(node.nodeName === "CODE" && LANGUAGE_CLASS.test(data.attrValue))) {
      data.keepAttr = false;
    }
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "A" && node.hasAttribute("href")) {
      node.setAttribute("rel", "noopener nofollow");
      node.setAttribute("target", "_blank");
    }
  });
  const config = {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "start", "class"],
    ALLOWED_URI_REGEXP: SAFE_URI,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_DOM_FRAGMENT: true, // no second HTML parse of the cleaned markup
  };
  return {
    render: (text) => DOMPurify.sanitize(parser.parse(text), config),
    blocks: (text) => parser.lexer(text),
  };
}

const markdown = createMarkdown();

/**
 * Shows the answer's Markdown in `element` as it grows: update(source) on each frame,
 * end(source) once.
 *
 * Parsing the whole answer again on every frame would cost O(n) per frame, O(n²) over a long
 * answer. A block is final once marked's lexer has begun a later one and that block's first
 * line is whole (before that, "2" may still become "2. item" of the list above it, and "#"
 * may be "#hashtag" in the paragraph above it). Final blocks are rendered once and kept; each
 * update parses only the text from the first block still open, after the link reference
 * definitions ("[ref]: url") among the final ones. Line breaks are made LF as they come (the
 * lexer's raws are the text itself then). The answer's end checks the whole once: a block
 * that renders differently as part of it (a link whose definition came after it) is put
 * right then.
 */
function createMarkdownView(element) {
  let text = ""; // the source so far, its line breaks made LF
  let taken = 0; // characters of the source in `text`
  let afterCR = false; // the source so far ends in CR: an LF next is the rest of a CRLF
  let final = 0; // characters of `text` rendered as final blocks
  let definitions = ""; // the link reference definitions among the final blocks
  let open = []; // the nodes of the open block(s), replaced on each update
  let ended = false; // after end(), a late animation frame changes nothing

  function take(source) {
    let piece = source.slice(taken);
    taken = source.length;
    if (afterCR && piece[0] === "\n") piece = piece.slice(1);
    if (piece) afterCR = piece.endsWith("\r");
    text += piece.replace(/\r\n?/g, "\n");
  }

  function update(source) {
    if (ended) return;
    take(source);
    const rest = text.slice(final);
    const tokens = markdown.blocks(rest);
    const raws = (end) => tokens.slice(0, end).map((token) => token.raw).join("");
    const lastWithText = (from) => {
      let i = from;
      while (i > 0 && tokens[i].type === "space") i--;
      return i;
    };
    let last = lastWithText(tokens.length - 1); // the open block
    if (last > 0 && !rest.slice(raws(last).length).replace(/^\n+/, "").includes("\n")) {
      last = lastWithText(last - 1); // its first line is not whole: the one before stays open
    }
    const closed = tokens.slice(0, Math.max(last, 0));
    const closedText = raws(closed.length);
    for (const node of open) node.remove();
    if (closedText && rest.startsWith(closedText)) {
      element.append(markdown.render(definitions + closedText));
      for (const token of closed) {
        if (token.type === "def") definitions += token.raw.trimEnd() + "\n\n";
      }
      final += closedText.length;
    }
    const fragment = markdown.render(definitions + text.slice(final));
    open = [...fragment.childNodes];
    element.append(fragment);
  }

  function end(source) {
    update(source);
    ended = true;
    const whole = document.createElement("div");
    whole.append(markdown.render(source));
    if (whole.innerHTML !== element.innerHTML) element.replaceChildren(...whole.childNodes);
  }

  return { update, end };
}

/** {update, end} for a page without the Markdown libraries: the text as written. */
function createTextView(element) {
  let shown = 0; // characters of the source already in the element
  function update(source) {
    element.append(source.slice(shown)); // a text node: never parsed as HTML
    shown = source.length;
  }
  return { update, end: update };
}

// ------------------------------------------------------------ sources and provider tools

const MAX_TITLE = 120; // characters of a source title shown
const MAX_URL = 2048; // a longer URL is not linked

/**
 * `url` if it may be a link, else null: it must start with http:// or https:// and a host, so
 * the scheme the browser reads is a web one whatever follows (a leading space or control
 * character, which the URL parser strips, is refused: that is how "java\tscript:" gets past
 * naive checks). Returns the parsed URL, with spaces percent-encoded.
 */
function safeHref(url) {
  if (typeof url !== "string" || url.length > MAX_URL) return null;
  if (!/^https?:\/\/[^/?#\\\u0000-\u0020\u007f-\u009f]/i.test(url)) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** One line of at most `limit` characters (whole words), with an ellipsis when cut. */
function shorten(text, limit) {
  const line = String(text ?? "").replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200c\u200e-\u200f\u202a-\u202e\u2066-\u2069]/g, " ")
    .replace(/\s+/g, " ").trim();
  const chars = Array.from(line); // code points: an emoji is not cut in half
  if (chars.length <= limit) return line;
  let cut = chars.slice(0, limit).join("");
  const space = cut.lastIndexOf(" ");
  if (space >= (cut.length * 4) / 5) cut = cut.slice(0, space);
  return cut.trimEnd() + "…";
}

const ACTIVITY_LABELS = {
  web_search: "Searching the web",
  web_fetch: "Reading a web page",
  code_execution: "Running code",
  file_search: "Searching files",
  image_generation: "Generating an image",
};

function activityText({ name, summary }) {
  const label = ACTIVITY_LABELS[name] ?? `Running ${shorten(name, 40)}`;
  return summary ? `${label}: ${shorten(summary, 100)}…` : `${label}…`;
}

function setStreaming(streaming) {
  document.body.dataset.state = streaming ? "streaming" : "idle";
  promptBox.disabled = streaming;
  sendButton.disabled = streaming;
  stopButton.disabled = !streaming;
}

function describeDone({ finish_reason: reason, usage }) {
  let note = `finished: ${reason ?? "unknown"}`;
  if (usage) note += ` · ${usage.input_tokens} tokens in, ${usage.output_tokens} out`;
  return note;
}

async function ask(prompt) {
  addElement(addElement(log, "div", "message user"), "div", "text", prompt);
  const answer = addElement(log, "div", "message assistant");
  const text = addElement(answer, "div", markdown ? "text markdown" : "text");
  text.markdownSource = ""; // the answer as received (what a Copy button would copy)
  const view = markdown ? createMarkdownView(text) : createTextView(text);
  const activities = addElement(answer, "div", "activities");
  let sources = null; // the <ol> of sources, made at the first one
  const sourceKeys = new Set();
  const running = new Map(); // provider tool id -> its activity line
  let reasoning = null;
  let ended = false; // "done" or "error" arrived: anything else is a cut connection
  let renderPending = false;
  answer.dataset.status = "streaming";
  controller = new AbortController();
  setStreaming(true);
  answer.scrollIntoView({ block: "end" });

  function render() {
    renderPending = false;
    view.update(text.markdownSource);
  }

  function addSource(source) {
    const key = [source.kind, source.url, source.document_id, source.container_id, source.index]
      .join("\u0000");
    if (sourceKeys.has(key)) return; // the same page cited for another sentence
    sourceKeys.add(key);
    if (sources === null) {
      const nav = document.createElement("nav");
      nav.className = "sources";
      nav.setAttribute("aria-label", "Sources");
      addElement(nav, "div", "sources-title", "Sources");
      sources = addElement(nav, "ol", "");
      activities.after(nav);
    }
    const item = addElement(sources, "li", "");
    item.value = Number.isInteger(source.index) ? source.index : sourceKeys.size;
    const shown = source.title ? shorten(source.title, MAX_TITLE)
      : shorten(source.url ?? source.document_id ?? source.kind, 80);
    const href = safeHref(source.url);
    if (href === null) {
      item.textContent = shown; // not a web address (or an unsafe one): text only
      return;
    }
    const link = addElement(item, "a", "", shown);
    link.href = href;
    link.rel = "noopener nofollow";
    link.target = "_blank";
    link.title = shorten(source.title || source.url, 300);
  }

  function trackActivity(activity) {
    const line = running.get(activity.id);
    if (activity.status === "started") {
      if (line) return;
      running.set(activity.id, addElement(activities, "div", "activity", activityText(activity)));
    } else if (line) {
      line.remove(); // the tool ended: its result is part of the answer
      running.delete(activity.id);
    }
  }

  function finish() {
    view.end(text.markdownSource); // also what a pending animation frame would have shown
    for (const line of running.values()) line.remove();
    running.clear();
  }

  function onEvent({ event, data }) {
    const payload = JSON.parse(data);
    if (event === "delta") {
      text.markdownSource += payload.text;
      if (!renderPending) {
        renderPending = true; // at most one render per frame, however fast tokens come
        requestAnimationFrame(render);
      }
    } else if (event === "reasoning") {
      if (reasoning === null) {
        const details = document.createElement("details");
        details.className = "reasoning";
        addElement(details, "summary", "", "Reasoning");
        reasoning = addElement(details, "div", "");
        answer.prepend(details);
      }
      reasoning.append(payload.text);
    } else if (event === "tool_call") {
      addElement(answer, "div", "note tool", `tool call ${payload.name}(${payload.arguments})`);
    } else if (event === "source") {
      addSource(payload);
    } else if (event === "tool_activity") {
      trackActivity(payload);
    } else if (event === "done") {
      ended = true;
      finish();
      answer.dataset.status = "done";
      addElement(answer, "div", "note meta", describeDone(payload));
    } else if (event === "error") {
      ended = true;
      finish();
      answer.dataset.status = "error";
      addElement(answer, "div", "note error", payload.message);
    }
    answer.scrollIntoView({ block: "end" });
  }

  try {
    await streamChat("api/chat", prompt, onEvent, controller.signal);
    if (!ended) throw new Error("the connection closed before the answer was complete");
  } catch (error) {
    finish();
    if (error.name === "AbortError") {
      answer.dataset.status = "stopped";
      addElement(answer, "div", "note meta", "Stopped.");
    } else {
      answer.dataset.status = "error";
      addElement(answer, "div", "note error", error.message || String(error));
    }
  } finally {
    // Also when onEvent threw (an event the page cannot read): the request must not go on
    // generating an answer nobody shows. After a complete answer this changes nothing.
    controller.abort();
    controller = null;
    setStreaming(false);
    promptBox.focus();
  }
}

form.addEventListener("submit", (submitEvent) => {
  submitEvent.preventDefault();
  const prompt = promptBox.value.trim();
  if (!prompt || controller !== null) return;
  promptBox.value = "";
  ask(prompt);
});

promptBox.addEventListener("keydown", (keyEvent) => {
  // isComposing: Enter also confirms a Korean/Japanese/Chinese IME composition; don't send then.
  if (keyEvent.key === "Enter" && !keyEvent.shiftKey && !keyEvent.isComposing) {
    keyEvent.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => controller?.abort());
