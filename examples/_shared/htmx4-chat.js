// What the htmx 4 chat pages (examples/fastapi htmx4.html, examples/django) do when a request
// ends without the answer's last event: stopped, cut off by a lost connection, or refused.
//
// The server ends every answer with a `done` event (after an error message too). Stop aborts
// the request instead: the server sees the disconnect and closes the model stream. A network
// cut ends the fetch with an error; the POST is not sent again (hx-sse reconnects only
// hx-sse:connect streams, and this answer cannot be resumed). In both cases no last event
// comes, so the page does what it would have done: the answer keeps what it shows, its tail
// element is unwrapped, a provider tool's "Searching…" line goes (the tool will not finish),
// and a note says how it ended. A request that got no answer at all (an HTTP error from the
// app or a proxy, a server that cannot be reached) gets a note of its own: htmx shows nothing
// for it. Only the answer this request made is touched, never one that was on the page when
// it was sent.
//
// The page it expects: `<div id="messages">` holding the answers (`.answer`), the
// `<form id="chat-form" hx-post=...>` after it, and a `<button type="button" id="stop">`.
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  const messages = document.getElementById("messages");
  const stop = document.getElementById("stop");
  if (!form || !messages || !stop) {
    console.warn("htmx4-chat.js needs #chat-form, #messages and #stop on the page");
    return;
  }
  let answersBefore = Infinity; // answers on the page when the request was sent; then ended

  function currentAnswer() {
    const answers = messages.querySelectorAll(".answer");
    return answers.length > answersBefore ? answers[answers.length - 1] : null;
  }

  function errorNote(text) {
    const note = document.createElement("p");
    note.className = "sse-llm-error";
    note.setAttribute("role", "alert");
    note.textContent = text;
    return note;
  }

  // The request ends here: its answer, if one came, keeps what it shows and nothing more.
  function endRequest() {
    const answer = currentAnswer();
    answersBefore = Infinity;
    if (answer) {
      answer.querySelectorAll(".sse-llm-activity").forEach((line) => line.remove());
      const tail = answer.querySelector(".sse-llm-tail");
      if (tail) tail.replaceWith(...tail.childNodes);
    }
    return answer;
  }

  form.addEventListener("submit", () => {
    answersBefore = messages.querySelectorAll(".answer").length;
  });
  form.addEventListener("done", () => {
    answersBefore = Infinity; // the answer ended as the server meant
  });
  stop.addEventListener("click", () => {
    htmx.trigger(form, "htmx:abort");
    const answer = endRequest();
    if (!answer) return; // stopped before its answer came
    const note = document.createElement("p");
    note.className = "sse-llm-stopped";
    note.textContent = "Stopped";
    answer.after(note);
  });
  // After `done` or a Stop the request ended already; what is left is a cut connection.
  form.addEventListener("htmx:sse:close", () => {
    if (!currentAnswer()) return; // no answer yet: htmx:finally:request says why
    // As the server's own error message (MarkdownFormat's last fragment) would show it.
    endRequest().append(errorNote("The connection was lost. Please ask again."));
  });
  // The request is over (after the stream's close, if it streamed) and no answer came.
  form.addEventListener("htmx:finally:request", (event) => {
    if (answersBefore === Infinity) return;
    endRequest();
    const status = event.detail.ctx?.response?.status;
    messages.append(
      errorNote(
        status === undefined
          ? "The server could not be reached. Please ask again."
          : status >= 400
            ? `The request failed (HTTP ${status}). Please ask again.`
            : "The connection was lost. Please ask again.",
      ),
    );
  });
})();
