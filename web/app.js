// Kennel admin page (placeholder until the page lands).
