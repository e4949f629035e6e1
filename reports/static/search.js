// Suggestions for the search box, from the public API. The page works without it.
"use strict";
(function () {
  const input = document.getElementById("q");
  const list = document.getElementById("project-suggestions");
  if (!input || !list) return;
  let timer = null;
  let last = "";
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(async function () {
      const text = input.value.trim();
      if (text.length < 2 || text === last) return;
      last = text;
      try {
        const url = "/api/v1/projects?limit=10&prefix=" + encodeURIComponent(text);
        const answer = await fetch(url, { headers: { Accept: "application/json" } });
        if (!answer.ok) return;
        const page = await answer.json();
        list.replaceChildren();
        for (const item of page.items) {
          const option = document.createElement("option");
          option.value = item.name; // textContent/value only: never HTML
          list.appendChild(option);
        }
      } catch (error) {
        // Suggestions are a convenience; the form still works.
      }
    }, 150);
  });
})();
