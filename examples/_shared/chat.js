// The sse-llm chat demo: POST the prompt, read the answer as it streams, with no library.
//
// EventSource can only GET (no JSON body, no headers) and reconnects by itself when a stream
// ends, so a chat page reads the stream with fetch() and needs its own SSE parser:
// createSSEParser below is the part to copy. The model's output is inserted as text, never HTML.
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
  element.className = className;
  element.textContent = text; // textContent: model output is never parsed as HTML
  parent.append(element);
  return element;
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
  const text = addElement(answer, "div", "text");
  let reasoning = null;
  let ended = false; // "done" or "error" arrived: anything else is a cut connection
  answer.dataset.status = "streaming";
  controller = new AbortController();
  setStreaming(true);
  answer.scrollIntoView({ block: "end" });

  function onEvent({ event, data }) {
    const payload = JSON.parse(data);
    if (event === "delta") {
      text.append(payload.text); // a Text node: appending is cheap and never parses HTML
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
    } else if (event === "done") {
      ended = true;
      answer.dataset.status = "done";
      addElement(answer, "div", "note meta", describeDone(payload));
    } else if (event === "error") {
      ended = true;
      answer.dataset.status = "error";
      addElement(answer, "div", "note error", payload.message);
    }
    answer.scrollIntoView({ block: "end" });
  }

  try {
    await streamChat("api/chat", prompt, onEvent, controller.signal);
    if (!ended) throw new Error("the connection closed before the answer was complete");
  } catch (error) {
    if (error.name === "AbortError") {
      answer.dataset.status = "stopped";
      addElement(answer, "div", "note meta", "Stopped.");
    } else {
      answer.dataset.status = "error";
      addElement(answer, "div", "note error", error.message || String(error));
    }
  } finally {
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
