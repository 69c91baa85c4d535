// The console page module search.js: written in the next commit.
