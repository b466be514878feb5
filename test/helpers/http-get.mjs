// Prints the body of one HTTP GET of argv[2] and exits 1 on a non-2xx answer: the real-systemd
// container (test/helpers/systemd.ts) has no curl, but the tests bind the host's node into it.
const r = await fetch(process.argv[2]);
process.stdout.write(await r.text());
process.exit(r.ok ? 0 : 1);
