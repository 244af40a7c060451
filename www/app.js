// The demo app: Vue on micro-sync's published API (no build step).
import { createApp, computed, onMounted, onUnmounted, reactive, ref, watch } from "vue";
import { createIndexedDbStorage } from "micro-sync";
import { syncOrmPlugin, useQuery, useRepo, useSyncOrm } from "micro-sync/adapters/vue";
import { network, projects as projectModel, tasks as taskModel } from "./models.js";

const SORTS = {
  newest: [{ field: "createdAt", direction: "desc" }],
  title: [{ field: "title" }],
  priority: [{ field: "priority" }, { field: "createdAt", direction: "desc" }],
};

const App = {
  setup() {
    const sync = useSyncOrm(); // the app's ORM, installed below with syncOrmPlugin
    const projectRepo = useRepo("projects");
    const taskRepo = useRepo("tasks");
    const selected = ref(null);
    const search = ref("");
    const showDone = ref(true);
    const sort = ref("newest");
    const newTask = ref("");
    const newPriority = ref(2);
    const newProject = ref("");
    const editing = ref(null);
    const editTitle = ref("");
    const error = ref("");
    const pending = ref([]);
    const offline = ref(false);

    // Live queries: they follow every write, pull, rollback and other tab by themselves, and the
    // task list runs again when a filter changes.
    const { data: projects } = useQuery("projects", () => ({ orderBy: [{ field: "name" }], relations: { tasks: { fields: ["done"] } } }));
    const { data: tasks, error: tasksError } = useQuery("tasks", () => {
      const where = {};
      if (selected.value) where.projectId = selected.value;
      if (!showDone.value) where.done = false;
      if (search.value.trim()) where.title = { fzlike: search.value.trim() };
      return { where, orderBy: SORTS[sort.value], relations: { project: { fields: ["name", "color"] } } };
    });
    watch(tasksError, (e) => e && show(e));
    watch(projects, (ps) => {
      if (!selected.value && ps.length) selected.value = ps[0].id;
    });

    const status = computed(() => {
      const p = projectRepo.status.value;
      const t = taskRepo.status.value;
      const last = Math.max(p.lastSyncedAt ?? 0, t.lastSyncedAt ?? 0);
      return {
        online: t.online,
        syncing: p.syncing || t.syncing,
        pending: p.pendingCount + t.pendingCount,
        lastError: t.lastError ?? p.lastError,
        lastSynced: last ? new Date(last).toLocaleTimeString() : "never",
      };
    });
    // What reached the backend: writes and the requests that carried them (batches of up to 100).
    const backend = ref(null);
    const refreshStats = async () => {
      try {
        backend.value = await (await fetch("/api/stats")).json();
      } catch {
        // The backend is unreachable: keep the last figures.
      }
    };
    watch(() => status.value.pending, async () => {
      pending.value = await sync.db.pending();
      refreshStats();
    }, { immediate: true });

    // Confirmations: each task's last write made here, until the backend acknowledged it
    // ("synced") or rejected it; whenSynced works whichever tab pushes the write.
    const confirmations = reactive(new Map());
    let writeNo = 0;
    function track(id, written) {
      if (!written.mutationIds.length) return;
      const no = ++writeNo;
      confirmations.set(id, { no, state: "pending" });
      const settle = (state) => confirmations.get(id)?.no === no && confirmations.set(id, { no, state });
      sync.db.whenSynced(written).then(() => settle("synced"), () => settle("rejected"));
    }
    const MARKS = { pending: ["…", "waiting for the backend"], synced: ["✓", "saved on the server"], rejected: ["✗", "rejected by the server"] };
    const mark = (id) => MARKS[confirmations.get(id)?.state] ?? ["", ""];

    // Writes the backend rejected: rolled back, listed until dismissed (in every tab).
    const rejected = ref([]);
    const refreshRejected = async () => {
      rejected.value = await sync.db.rejected();
    };
    watch(() => [status.value.pending, status.value.lastError], refreshRejected, { immediate: true });
    const dismiss = (r) => act(async () => {
      await sync.db.acknowledgeRejected(r.mutationId);
      await refreshRejected();
    });

    function show(e) {
      error.value = e.issues ? e.issues.map((i) => i.message).join("; ") : `${e.name}: ${e.message}`;
    }
    async function act(fn) {
      error.value = "";
      try {
        await fn();
      } catch (e) {
        show(e);
      }
    }
    const pull = () => act(async () => {
      await sync.db.model("projects").sync();
      await sync.db.model("tasks").sync();
    });

    const addTask = () => act(async () => {
      if (!selected.value) throw new Error("pick or create a project first");
      const now = new Date().toISOString();
      const written = await taskRepo.insert({ values: { projectId: selected.value, title: newTask.value, priority: Number(newPriority.value), createdAt: now, updatedAt: now } });
      track(written[0].id, written);
      newTask.value = "";
    });
    const addProject = () => act(async () => {
      const [p] = await projectRepo.insert({ values: { name: newProject.value } });
      newProject.value = "";
      selected.value = p.id;
    });
    const edit = async (t, values) => track(t.id, await taskRepo.update({ where: { id: t.id }, values: { ...values, updatedAt: new Date().toISOString() } }));
    const toggle = (t) => act(() => edit(t, { done: !t.done }));
    const remove = (t) => act(() => taskRepo.delete({ where: { id: t.id } }));
    const startEdit = (t) => ((editing.value = t.id), (editTitle.value = t.title));
    const saveEdit = (t) => act(async () => {
      await edit(t, { title: editTitle.value });
      editing.value = null;
    });
    const retry = (m) => act(() => sync.db.retryPending(m.mutationId));
    const discard = (m) => act(() => sync.db.discardPending(m.mutationId));
    const setOffline = (v) => {
      offline.value = v;
      network.set(v);
      if (!v) pull();
    };

    let timer;
    onMounted(async () => {
      if (network.isOnline()) await pull();
      timer = setInterval(() => {
        if (network.isOnline() && status.value.pending === 0) pull();
        refreshRejected(); // another tab may have dismissed some
      }, 5000);
    });
    onUnmounted(() => clearInterval(timer));

    window.demo = { sync, network, pull };
    return {
      projects, tasks, backend, selected, search, showDone, sort, newTask, newPriority, newProject,
      editing, editTitle, error, pending, offline, status, addTask, addProject, toggle, remove, startEdit, saveEdit, retry,
      discard, setOffline, pull, mark, rejected, dismiss,
    };
  },
  template: /* html */ `
    <header>
      <h1>micro-sync <small>local-first tasks</small></h1>
      <div class="status" data-test="status">
        <span :class="['dot', status.online ? 'on' : 'off']"></span>{{ status.online ? "online" : "offline" }}
        <span v-if="status.syncing" class="badge">syncing…</span>
        <span class="badge" data-test="pending">{{ status.pending }} pending</span>
        <span class="muted">last synced {{ status.lastSynced }}</span>
        <span v-if="backend" class="muted" data-test="batches">{{ backend.received }} writes sent in {{ backend.requests }} requests</span>
        <label class="switch"><input type="checkbox" :checked="offline" @change="setOffline($event.target.checked)" data-test="offline" /> go offline</label>
        <button class="ghost" @click="pull">Pull now</button>
      </div>
      <p class="muted small" data-test="conflict">Conflicts on pull: the newer edit of a task wins (<code>conflict: { lww: "updatedAt" }</code>); ✓ marks a write the server confirmed.</p>
      <p v-if="status.lastError" class="error" data-test="last-error">{{ status.lastError }}</p>
    </header>
    <main>
      <aside>
        <h2>Projects</h2>
        <ul class="projects">
          <li v-for="p in projects" :key="p.id" :class="{ active: p.id === selected }" @click="selected = p.id">
            <span class="swatch" :style="{ background: p.color }"></span>{{ p.name }}
            <span class="muted">{{ (p.tasks ?? []).filter(t => !t.done).length }}/{{ (p.tasks ?? []).length }}</span>
          </li>
        </ul>
        <form @submit.prevent="addProject"><input v-model="newProject" placeholder="New project" data-test="new-project" /><button>Add</button></form>
      </aside>
      <section>
        <div class="filters">
          <input v-model="search" placeholder="Fuzzy search titles" data-test="search" />
          <label><input type="checkbox" v-model="showDone" /> show done</label>
          <select v-model="sort"><option value="newest">newest</option><option value="title">title</option><option value="priority">priority</option></select>
        </div>
        <form class="add" @submit.prevent="addTask">
          <input v-model="newTask" placeholder="What needs doing?" data-test="new-task" />
          <select v-model="newPriority"><option :value="1">high</option><option :value="2">normal</option><option :value="3">low</option></select>
          <button data-test="add-task">Add task</button>
        </form>
        <p v-if="error" class="error" data-test="error">{{ error }}</p>
        <ul class="tasks" data-test="tasks">
          <li v-for="t in tasks" :key="t.id" :class="{ done: t.done }">
            <input type="checkbox" :checked="t.done" @change="toggle(t)" />
            <input v-if="editing === t.id" v-model="editTitle" @keyup.enter="saveEdit(t)" @blur="saveEdit(t)" class="edit" />
            <span v-else class="title" @dblclick="startEdit(t)">{{ t.title }}</span>
            <span class="tick" data-test="confirm" :title="mark(t.id)[1]">{{ mark(t.id)[0] }}</span>
            <span :class="['prio', 'p' + t.priority]">{{ ["", "high", "normal", "low"][t.priority] }}</span>
            <span class="muted" v-if="t.project">{{ t.project.name }}</span>
            <button class="ghost" @click="remove(t)">Delete</button>
          </li>
          <li v-if="!tasks.length" class="muted">No tasks here yet.</li>
        </ul>
        <h2>Pending mutations</h2>
        <table class="pending" data-test="pending-list">
          <tr v-for="m in pending" :key="m.mutationId">
            <td>{{ m.action }}</td><td>{{ m.model }}</td><td class="mono">{{ Array.isArray(m.key) ? m.key.length + " rows" : "…" + String(m.key).slice(-8) }}</td>
            <td>{{ m.attempts }} tries</td><td class="error">{{ m.lastError }}</td>
            <td><button class="ghost" @click="retry(m)">Retry</button><button class="ghost" @click="discard(m)">Discard</button></td>
          </tr>
          <tr v-if="!pending.length"><td class="muted">Nothing waiting: every write reached the backend.</td></tr>
        </table>
        <template v-if="rejected.length">
          <h2>Rejected by the server</h2>
          <table class="pending" data-test="rejected-list">
            <tr v-for="r in rejected" :key="r.mutationId">
              <td>{{ r.action }}</td><td>{{ r.model }}</td>
              <td>{{ r.rows.map((row) => row.title ?? row.name ?? row.id).join(", ") || "…" + String(r.key).slice(-8) }}</td>
              <td class="error">{{ r.error }}</td>
              <td><button class="ghost" @click="dismiss(r)" data-test="dismiss">Dismiss</button></td>
            </tr>
          </table>
        </template>
      </section>
    </main>`,
};

createApp(App)
  .use(syncOrmPlugin, {
    storage: createIndexedDbStorage({ name: "micro-sync-demo" }),
    models: { projects: projectModel, tasks: taskModel },
    engine: { intervalMs: 2000, networkDetector: network },
  })
  .mount("#app");
