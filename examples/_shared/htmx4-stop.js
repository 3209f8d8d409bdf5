// The Stop button of the htmx 4 chat pages (examples/fastapi htmx4.html, examples/django).
//
// Stop aborts the request: the server sees the disconnect and closes the model stream. A
// stopped stream sends no last event, so the page does what that event would have done: the
// answer keeps what it shows, its tail element is unwrapped, a provider tool's "Searching…"
// line goes (the tool will not finish), and a note after it says it was stopped. Only the
// answer this request made is touched, never one that was on the page when it was sent.
"use strict";
(() => {
  const form = document.getElementById("chat-form");
  let answersBefore = Infinity; // answers on the page when the current request was sent
  form.addEventListener("submit", () => {
    answersBefore = document.querySelectorAll("#messages .answer").length;
  });
  document.getElementById("stop").addEventListener("click", () => {
    htmx.trigger(form, "htmx:abort");
    const answers = document.querySelectorAll("#messages .answer");
    if (answers.length <= answersBefore) return; // stopped before its answer came
    answersBefore = Infinity;
    const answer = answers[answers.length - 1];
    answer.querySelectorAll(".sse-llm-activity").forEach((line) => line.remove());
    const tail = answer.querySelector(".sse-llm-tail");
    if (tail) tail.replaceWith(...tail.childNodes);
    const note = document.createElement("p");
    note.className = "sse-llm-stopped";
    note.textContent = "Stopped";
    answer.after(note);
  });
})();
