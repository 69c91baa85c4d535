// The console page module api.js: written in the next commit.
