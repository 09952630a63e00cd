// A client-side router: every path is this page; data comes from /api.
fetch("/api/hello")
  .then((r) => r.json())
  .then((data) => { document.getElementById("app").textContent = JSON.stringify(data); })
  .catch(() => { document.getElementById("app").textContent = "API unavailable"; });
