// The console page module charts.js: written in the next commit.
