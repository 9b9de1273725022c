// Parses LogQL queries (a JSON array on stdin) with Grafana's own grammar, @grafana/lezer-logql;
// prints a JSON array of booleans: true when the parse tree has no error node.
const { parser } = require(process.argv[2] + "/node_modules/@grafana/lezer-logql");
const queries = JSON.parse(require("fs").readFileSync(0, "utf8"));
const valid = queries.map((query) => {
  let ok = true;
  parser.parse(query).iterate({ enter: (node) => { if (node.type.isError) ok = false; } });
  return ok;
});
process.stdout.write(JSON.stringify(valid));
