// The console page module alerts.js: written in the next commit.
