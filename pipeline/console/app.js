// The console page module app.js: written in the next commit.
