// Fixture: creates a lab and ends without disposing of it; the lab's unload
// hook must still remove the namespaces.
import { Lab } from "../lab.ts";

const lab = await Lab.create({ routers: 1 });
console.log(JSON.stringify(Object.values(lab.hosts).map((h) => h.ns)));
