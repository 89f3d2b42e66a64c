// Refresh live sections (data-refresh="URL", data-every="ms") in place; nothing else needs script.
document.addEventListener("DOMContentLoaded", () => {
  for (const section of document.querySelectorAll("[data-refresh]")) {
    const every = Number(section.dataset.every || 5000);
    const refresh = async () => {
      try {
        const response = await fetch(section.dataset.refresh, { credentials: "same-origin" });
        if (response.ok) {
          section.innerHTML = await response.text();
          section.dataset.refreshedAt = String(Date.now());
        }
      } catch (error) {
        // A missed refresh is shown by the snapshot time not moving; try again next round.
      }
      setTimeout(refresh, every);
    };
    setTimeout(refresh, every);
  }
});
