// What the htmx 4 chat pages (examples/fastapi htmx4.html, examples/django) do when an answer
// ends without its last event: stopped, or cut off by a lost connection.
//
// The server ends every answer with a `done` event (after an error message too). Stop aborts
// the request instead: the server sees the disconnect and closes the model stream. A network
// cut ends the fetch with an error; the POST is not sent again (hx-sse reconnects only
// hx-sse:connect streams, and this answer cannot be resumed). In both cases no last event
// comes, so the page does what it would have done: the answer keeps what it shows, its tail
// element is unwrapped, a provider tool's "Searching…" line goes (the tool will not finish),
// and a note says how it ended. Only the answer this request made is touched, never one that
// was on the page when it was sent.
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  let answersBefore = Infinity; // answers on the page when the current request was sent

  // The answer of the current request, once; null if it ended already or never came.
  function takeAnswer() {
    const answers = document.querySelectorAll("#messages .answer");
    const mine = answers.length > answersBefore ? answers[answers.length - 1] : null;
    answersBefore = Infinity;
    if (mine) {
      mine.querySelectorAll(".sse-llm-activity").forEach((line) => line.remove());
      const tail = mine.querySelector(".sse-llm-tail");
      if (tail) tail.replaceWith(...tail.childNodes);
    }
    return mine;
  }

  form.addEventListener("submit", () => {
    answersBefore = document.querySelectorAll("#messages .answer").length;
  });
  form.addEventListener("done", () => {
    answersBefore = Infinity; // the answer ended as the server meant
  });
  document.getElementById("stop").addEventListener("click", () => {
    htmx.trigger(form, "htmx:abort");
    const answer = takeAnswer();
    if (!answer) return; // stopped before its answer came
    const note = document.createElement("p");
    note.className = "sse-llm-stopped";
    note.textContent = "Stopped";
    answer.after(note);
  });
  // After `done` or a Stop the answer was taken already; what is left is a cut connection.
  form.addEventListener("htmx:sse:close", () => {
    const answer = takeAnswer();
    if (!answer) return;
    // As the server's own error message (MarkdownFormat's last fragment) would show it.
    const note = document.createElement("p");
    note.className = "sse-llm-error";
    note.setAttribute("role", "alert");
    note.textContent = "The connection was lost. Please ask again.";
    answer.append(note);
  });
})();
