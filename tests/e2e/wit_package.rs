//! The WIT package in `wit/` is the contract embedders read: it must parse,
//! and the component fmes ships (and the plugins built against `plugin.wit`)
//! must match it exactly. Changing `wit/queue.wit` without rebuilding the
//! guest, or the guest without the WIT, fails here.
//!
//! Both sides are written out item by item in one canonical text (every
//! type expanded down to primitives, named types with the interface that
//! defines them), so a difference names the function or type and shows both
//! versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wit_parser::{
    Function, FunctionKind, Handle, InterfaceId, PackageId, Resolve, Type, TypeDefKind, TypeId,
    TypeOwner, WorldId, WorldItem, WorldKey,
};

const PACKAGE: &str = "fmes:queue@0.1.0";

/// The interfaces the `queue` world exports, as their full names.
const QUEUE_EXPORTS: [&str; 5] = [
    "fmes:queue/types@0.1.0",
    "fmes:queue/admin@0.1.0",
    "fmes:queue/messages@0.1.0",
    "fmes:queue/claims@0.1.0",
    "fmes:queue/dead-letters@0.1.0",
];

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// Parses a WIT package directory, as embedders (and wit-bindgen) do.
fn parse_dir(dir: &Path) -> anyhow::Result<(Resolve, PackageId)> {
    let mut resolve = Resolve::default();
    let (package, _sources) = resolve.push_dir(dir)?;
    Ok((resolve, package))
}

/// The repository's `wit/` package.
fn parse_wit() -> (Resolve, PackageId) {
    let dir = wit_dir();
    parse_dir(&dir).unwrap_or_else(|e| panic!("{} does not parse: {e:?}", dir.display()))
}

fn world(resolve: &Resolve, package: PackageId, name: &str) -> WorldId {
    resolve
        .select_world(&[package], Some(name))
        .unwrap_or_else(|e| panic!("world {name} of {PACKAGE}: {e:?}"))
}

/// Decodes a component binary into the world it implements.
fn decode_component(what: &str, bytes: &[u8]) -> (Resolve, WorldId) {
    match wit_component::decode(bytes).unwrap_or_else(|e| panic!("decode {what}: {e:?}")) {
        wit_component::DecodedWasm::Component(resolve, world) => (resolve, world),
        wit_component::DecodedWasm::WitPackage(..) => {
            panic!("{what} is a WIT package, not a component")
        }
    }
}

/// Writes out a type completely: primitives by name, named types as
/// `interface.name=definition`, anonymous ones by their definition. Aliases
/// (`use`, `type a = b`) are followed, so a type reads the same wherever it
/// is used from.
fn type_text(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => typedef_text(resolve, *id),
    }
}

fn typedef_text(resolve: &Resolve, id: TypeId) -> String {
    let def = &resolve.types[id];
    if let TypeDefKind::Type(target) = &def.kind {
        return type_text(resolve, target);
    }
    let body = typedef_body(resolve, id);
    match &def.name {
        Some(name) => format!("{}={body}", qualified_type_name(resolve, id, name)),
        None => body,
    }
}

/// `fmes:queue/types@0.1.0.message`: the interface (or world) that defines
/// the type, and its name.
fn qualified_type_name(resolve: &Resolve, id: TypeId, name: &str) -> String {
    match resolve.types[id].owner {
        TypeOwner::Interface(interface) => format!("{}.{name}", interface_name(resolve, interface)),
        TypeOwner::World(world) => format!("world {}.{name}", resolve.worlds[world].name),
        TypeOwner::None => name.to_string(),
    }
}

fn optional_type_text(resolve: &Resolve, ty: Option<&Type>) -> String {
    ty.map_or_else(|| "_".into(), |ty| type_text(resolve, ty))
}

fn typedef_body(resolve: &Resolve, id: TypeId) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match &resolve.types[id].kind {
        TypeDefKind::Record(record) => format!(
            "record{{{}}}",
            list(
                record
                    .fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name, type_text(resolve, &f.ty)))
                    .collect()
            )
        ),
        TypeDefKind::Variant(variant) => format!(
            "variant{{{}}}",
            list(
                variant
                    .cases
                    .iter()
                    .map(|c| match &c.ty {
                        Some(ty) => format!("{}({})", c.name, type_text(resolve, ty)),
                        None => c.name.clone(),
                    })
                    .collect()
            )
        ),
        TypeDefKind::Enum(e) => format!(
            "enum{{{}}}",
            list(e.cases.iter().map(|c| c.name.clone()).collect())
        ),
        TypeDefKind::Flags(flags) => format!(
            "flags{{{}}}",
            list(flags.flags.iter().map(|f| f.name.clone()).collect())
        ),
        TypeDefKind::Tuple(tuple) => format!(
            "tuple<{}>",
            list(tuple.types.iter().map(|t| type_text(resolve, t)).collect())
        ),
        TypeDefKind::Option(ty) => format!("option<{}>", type_text(resolve, ty)),
        TypeDefKind::Result(r) => format!(
            "result<{}, {}>",
            optional_type_text(resolve, r.ok.as_ref()),
            optional_type_text(resolve, r.err.as_ref())
        ),
        TypeDefKind::List(ty) => format!("list<{}>", type_text(resolve, ty)),
        TypeDefKind::FixedLengthList(ty, n) => format!("list<{}, {n}>", type_text(resolve, ty)),
        TypeDefKind::Map(k, v) => {
            format!("map<{}, {}>", type_text(resolve, k), type_text(resolve, v))
        }
        TypeDefKind::Future(ty) => format!("future<{}>", optional_type_text(resolve, ty.as_ref())),
        TypeDefKind::Stream(ty) => format!("stream<{}>", optional_type_text(resolve, ty.as_ref())),
        TypeDefKind::Resource => "resource".into(),
        // A handle names its resource; expanding it would only repeat "resource".
        TypeDefKind::Handle(Handle::Own(r)) => format!("own<{}>", resource_name(resolve, *r)),
        TypeDefKind::Handle(Handle::Borrow(r)) => {
            format!("borrow<{}>", resource_name(resolve, *r))
        }
        TypeDefKind::Type(ty) => type_text(resolve, ty),
        TypeDefKind::Unknown => "unknown".into(),
    }
}

fn resource_name(resolve: &Resolve, mut id: TypeId) -> String {
    while let TypeDefKind::Type(Type::Id(target)) = resolve.types[id].kind {
        id = target;
    }
    let name = resolve.types[id].name.as_deref().unwrap_or("<anonymous>");
    qualified_type_name(resolve, id, name)
}

fn function_text(resolve: &Resolve, function: &Function) -> String {
    let kind = match &function.kind {
        FunctionKind::Freestanding => "func",
        FunctionKind::AsyncFreestanding => "async func",
        _ => "resource func",
    };
    let params = function
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, type_text(resolve, &p.ty)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{kind}({params}) -> {}",
        optional_type_text(resolve, function.result.as_ref())
    )
}

fn interface_name(resolve: &Resolve, interface: InterfaceId) -> String {
    resolve
        .id_of(interface)
        .unwrap_or_else(|| "<anonymous interface>".into())
}

/// One line per function and per named type of an interface, keyed by
/// `interface#name`.
fn describe_interface(
    resolve: &Resolve,
    interface: InterfaceId,
    out: &mut BTreeMap<String, String>,
) {
    let name = interface_name(resolve, interface);
    let iface = &resolve.interfaces[interface];
    for (function_name, function) in &iface.functions {
        out.insert(
            format!("{name}#{function_name}"),
            function_text(resolve, function),
        );
    }
    for (type_name, id) in &iface.types {
        out.insert(
            format!("{name}#type {type_name}"),
            typedef_text(resolve, *id),
        );
    }
}

/// Every exported item of a world, written out in full.
fn describe_exports(resolve: &Resolve, world: WorldId) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, item) in &resolve.worlds[world].exports {
        describe_item(resolve, key, item, &mut out);
    }
    out
}

fn describe_item(
    resolve: &Resolve,
    key: &WorldKey,
    item: &WorldItem,
    out: &mut BTreeMap<String, String>,
) {
    match item {
        WorldItem::Interface { id, .. } => describe_interface(resolve, *id, out),
        WorldItem::Function(function) => {
            out.insert(
                format!("world#{}", resolve.name_world_key(key)),
                function_text(resolve, function),
            );
        }
        WorldItem::Type { id, .. } => {
            out.insert(
                format!("world#type {}", resolve.name_world_key(key)),
                typedef_text(resolve, *id),
            );
        }
    }
}

/// The full names of a world's exports (or imports).
fn item_names<'a>(resolve: &Resolve, items: impl Iterator<Item = &'a WorldKey>) -> Vec<String> {
    let mut names: Vec<String> = items.map(|key| resolve.name_world_key(key)).collect();
    names.sort();
    names
}

/// Compares what `wit/` declares with what a component has, item by item.
/// Returns one line per difference; empty when they match.
fn differences(
    declared: &BTreeMap<String, String>,
    built: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (key, want) in declared {
        match built.get(key) {
            None => found.push(format!(
                "{key}: declared in wit/ but missing from the component"
            )),
            Some(have) if have != want => found.push(format!(
                "{key}: differs\n    wit/:      {want}\n    component: {have}"
            )),
            Some(_) => {}
        }
    }
    for key in built.keys().filter(|key| !declared.contains_key(*key)) {
        found.push(format!("{key}: in the component but not declared in wit/"));
    }
    found
}

/// Checks a built queue component against a parsed world (`queue` or
/// `queue-hosted`): identical exports, and imports from WASI 0.2 and from
/// the world's own `fmes:` imports only, these with the declared signatures.
fn check_queue_component(
    wit: &Resolve,
    queue: WorldId,
    component: &Resolve,
    built: WorldId,
) -> Vec<String> {
    let mut found = Vec::new();
    let declared_names = item_names(wit, wit.worlds[queue].exports.keys());
    let built_names = item_names(component, component.worlds[built].exports.keys());
    if declared_names != built_names {
        found.push(format!(
            "exported interfaces differ\n    wit/:      {declared_names:?}\n    component: {built_names:?}"
        ));
    }
    found.extend(differences(
        &describe_exports(wit, queue),
        &describe_exports(component, built),
    ));
    let declared_imports = describe_fmes_imports(wit, queue);
    let allowed: Vec<String> = item_names(wit, wit.worlds[queue].imports.keys())
        .into_iter()
        .filter(|name| name.starts_with("fmes:"))
        .collect();
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    found.extend(non_wasi_imports(component, built, &allowed));
    found.extend(differences(
        &declared_imports,
        &describe_fmes_imports(component, built),
    ));
    found
}

/// Every item of a world's `fmes:` imports, written out in full.
fn describe_fmes_imports(resolve: &Resolve, world: WorldId) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, item) in &resolve.worlds[world].imports {
        if resolve.name_world_key(key).starts_with("fmes:") {
            describe_item(resolve, key, item, &mut out);
        }
    }
    out
}

/// Imports of a component that are neither WASI 0.2 interfaces nor named in
/// `allowed`.
fn non_wasi_imports(resolve: &Resolve, world: WorldId, allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (key, item) in &resolve.worlds[world].imports {
        let name = resolve.name_world_key(key);
        let WorldItem::Interface { id, .. } = item else {
            found.push(format!("import {name}: not an interface"));
            continue;
        };
        if allowed.contains(&name.as_str()) {
            continue;
        }
        let package = resolve.interfaces[*id]
            .package
            .map(|p| &resolve.packages[p].name);
        let is_wasi_p2 = package.is_some_and(|p| {
            p.namespace == "wasi"
                && p.version
                    .as_ref()
                    .is_some_and(|v| v.major == 0 && v.minor == 2)
        });
        if !is_wasi_p2 {
            found.push(format!("import {name}: not a WASI 0.2 interface"));
        }
    }
    found
}

#[track_caller]
fn assert_none(what: &str, found: &[String]) {
    assert!(
        found.is_empty(),
        "{what}: {} difference(s):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_wit_package_parses_with_its_three_worlds() {
    let (resolve, package) = parse_wit();
    assert_eq!(resolve.packages[package].name.to_string(), PACKAGE);
    let mut worlds: Vec<&str> = resolve.packages[package]
        .worlds
        .keys()
        .map(String::as_str)
        .collect();
    worlds.sort();
    assert_eq!(worlds, ["agent-plugin", "queue", "queue-hosted"]);

    let queue = world(&resolve, package, "queue");
    assert_eq!(
        item_names(&resolve, resolve.worlds[queue].exports.keys()),
        {
            let mut names = QUEUE_EXPORTS.map(String::from).to_vec();
            names.sort();
            names
        }
    );
    assert_eq!(
        item_names(&resolve, resolve.worlds[queue].imports.keys()),
        Vec::<String>::new(),
        "the queue world imports nothing but what its host gives every component (WASI)"
    );

    // The hosted world: the same exports, and the entries, folders,
    // listing, reads and writes (with the WASI interfaces their types come
    // from).
    let hosted = world(&resolve, package, "queue-hosted");
    assert_eq!(
        describe_exports(&resolve, hosted),
        describe_exports(&resolve, queue)
    );
    let imports = item_names(&resolve, resolve.worlds[hosted].imports.keys());
    assert_eq!(
        imports
            .iter()
            .filter(|name| !name.starts_with("wasi:"))
            .collect::<Vec<_>>(),
        [
            "fmes:queue/entries@0.1.0",
            "fmes:queue/folders@0.1.0",
            "fmes:queue/listing@0.1.0",
            "fmes:queue/reads@0.1.0",
            "fmes:queue/writes@0.1.0"
        ],
        "{imports:?}"
    );
    let listing = describe_fmes_imports(&resolve, hosted);
    let list_folder = &listing["fmes:queue/listing@0.1.0#list-folder"];
    assert!(
        list_folder.starts_with("func(folder: borrow<wasi:filesystem/types@0.2.12.descriptor"),
        "{list_folder}"
    );
    let open_folder = &listing["fmes:queue/folders@0.1.0#open-folder"];
    assert!(
        open_folder.starts_with(
            "func(parent: borrow<wasi:filesystem/types@0.2.12.descriptor>, path: string) -> result<own<wasi:filesystem/types@0.2.12.descriptor>, "
        ),
        "{open_folder}"
    );
}

#[test]
fn the_agent_plugin_world_imports_the_mailbox_and_exports_the_handler() {
    let (resolve, package) = parse_wit();
    let plugin = world(&resolve, package, "agent-plugin");
    // `types` comes along because both interfaces use `message` from it.
    assert_eq!(
        item_names(&resolve, resolve.worlds[plugin].imports.keys()),
        ["fmes:queue/mailbox@0.1.0", "fmes:queue/types@0.1.0"]
    );
    assert_eq!(
        item_names(&resolve, resolve.worlds[plugin].exports.keys()),
        ["fmes:queue/handler@0.1.0"]
    );
    let mut imports = BTreeMap::new();
    for (key, item) in &resolve.worlds[plugin].imports {
        describe_item(&resolve, key, item, &mut imports);
    }
    let send = &imports["fmes:queue/mailbox@0.1.0#send"];
    assert!(
        send.starts_with("func(to: string, type: option<string>, priority: option<u8>, payload: string) -> result<string, fmes:queue/mailbox@0.1.0.plugin-error=variant{"),
        "{send}"
    );
    assert_eq!(
        describe_exports(&resolve, plugin)
            .keys()
            .filter(|k| !k.contains("#type "))
            .collect::<Vec<_>>(),
        [
            "fmes:queue/handler@0.1.0#handle",
            "fmes:queue/handler@0.1.0#setup"
        ]
    );
}

#[test]
fn the_built_component_exports_exactly_the_queue_world_and_imports_only_wasi() {
    let (wit, package) = parse_wit();
    let queue = world(&wit, package, "queue");
    let (component, built) = decode_component("the fmes queue component", fmes::runtime::COMPONENT);

    // The comparison must have something to compare: every function of every
    // interface, and the named types.
    let declared = describe_exports(&wit, queue);
    for expected in [
        "fmes:queue/messages@0.1.0#send",
        "fmes:queue/claims@0.1.0#claim",
        "fmes:queue/dead-letters@0.1.0#list",
        "fmes:queue/admin@0.1.0#init",
        "fmes:queue/types@0.1.0#type message",
    ] {
        assert!(
            declared.contains_key(expected),
            "{expected} not in {declared:#?}"
        );
    }
    // Types are written out in full, named by the interface that defines them.
    let peek = &declared["fmes:queue/messages@0.1.0#peek"];
    assert!(
        peek.starts_with(
            "func(agent: string) -> result<u32, fmes:queue/types@0.1.0.queue-error=variant{"
        ),
        "{peek}"
    );

    assert_none(
        "the component against wit/queue.wit",
        &check_queue_component(&wit, queue, &component, built),
    );
    let imports = item_names(&component, component.worlds[built].imports.keys());
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:filesystem/preopens@0.2.")),
        "the component reaches _COMM through the preopens: {imports:?}"
    );
}

#[test]
fn the_hosted_component_matches_the_queue_hosted_world() {
    let (wit, package) = parse_wit();
    let hosted = world(&wit, package, "queue-hosted");
    let (component, built) = decode_component(
        "the hosted fmes queue component",
        fmes::runtime::HOSTED_COMPONENT,
    );
    assert_none(
        "the hosted component against wit/hosted.wit",
        &check_queue_component(&wit, hosted, &component, built),
    );
    // It does list, read, write and change entries through the host, with
    // every function.
    let imported = describe_fmes_imports(&component, built);
    for function in [
        "entries@0.1.0#rename",
        "entries@0.1.0#link",
        "entries@0.1.0#remove-file",
        "entries@0.1.0#flush-folder",
        "listing@0.1.0#list-folder",
        "listing@0.1.0#[method]folder-listing.next-batch",
        "reads@0.1.0#read-files",
        "writes@0.1.0#write-new",
    ] {
        let key = format!("fmes:queue/{function}");
        assert!(imported.contains_key(&key), "{key} not in {imported:#?}");
    }
    // And the portable one does not match it (it imports no listing).
    let (portable, portable_world) =
        decode_component("the fmes queue component", fmes::runtime::COMPONENT);
    let found = check_queue_component(&wit, hosted, &portable, portable_world);
    assert!(
        found.iter().any(|line| line
            .starts_with("fmes:queue/listing@0.1.0#list-folder: declared in wit/ but missing")),
        "{found:#?}"
    );
}

/// The check above is only worth something if it notices a change. Here a
/// copy of `wit/` is edited the ways a careless change would, and each edit
/// must be reported against the unchanged component.
#[test]
fn a_changed_wit_package_no_longer_matches_the_component() {
    let original = std::fs::read_to_string(wit_dir().join("queue.wit")).unwrap();
    let plugin = std::fs::read_to_string(wit_dir().join("plugin.wit")).unwrap();
    let (component, built) = decode_component("the fmes queue component", fmes::runtime::COMPONENT);

    let edits: [(&str, &str, &str, &str); 5] = [
        (
            "a result type",
            "peek: func(agent: string) -> result<u32, queue-error>;",
            "peek: func(agent: string) -> result<u64, queue-error>;",
            "fmes:queue/messages@0.1.0#peek: differs",
        ),
        (
            "a parameter name",
            "archive: func(agent: string, file: string)",
            "archive: func(agent: string, name: string)",
            "fmes:queue/messages@0.1.0#archive: differs",
        ),
        (
            "a record field used by many functions",
            "\n        id: string,\n",
            "\n        uuid: string,\n",
            "fmes:queue/claims@0.1.0#claim: differs",
        ),
        (
            "a new function",
            "    peek: func(agent: string) -> result<u32, queue-error>;",
            "    peek: func(agent: string) -> result<u32, queue-error>;\n    count: func() -> u32;",
            "fmes:queue/messages@0.1.0#count: declared in wit/ but missing from the component",
        ),
        (
            "an interface left out of the world",
            "    export dead-letters;\n",
            "",
            "fmes:queue/dead-letters@0.1.0#purge: in the component but not declared in wit/",
        ),
    ];
    for (what, from, to, expected) in edits {
        assert_eq!(
            original.matches(from).count(),
            1,
            "{what}: {from:?} not once in queue.wit"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("queue.wit"), original.replacen(from, to, 1)).unwrap();
        std::fs::write(dir.path().join("plugin.wit"), &plugin).unwrap();
        let (wit, package) = parse_dir(dir.path())
            .unwrap_or_else(|e| panic!("{what}: the edited copy does not parse: {e:?}"));
        let queue = world(&wit, package, "queue");
        let found = check_queue_component(&wit, queue, &component, built);
        assert!(
            found.iter().any(|line| line.starts_with(expected)),
            "{what}: expected a line starting {expected:?}, got {found:#?}"
        );
    }
}

/// The same for the listing the hosted component imports: a changed
/// signature in `wit/hosted.wit` is reported against the built component.
#[test]
fn a_changed_listing_interface_no_longer_matches_the_hosted_component() {
    let (component, built) = decode_component(
        "the hosted fmes queue component",
        fmes::runtime::HOSTED_COMPONENT,
    );
    let listing = std::fs::read_to_string(wit_dir().join("hosted.wit")).unwrap();
    let from = "        names: string,\n";
    assert_eq!(
        listing.matches(from).count(),
        1,
        "{from:?} not once in hosted.wit"
    );
    let dir = tempfile::tempdir().unwrap();
    for file in ["queue.wit", "plugin.wit"] {
        std::fs::copy(wit_dir().join(file), dir.path().join(file)).unwrap();
    }
    for package in ["clocks", "filesystem", "io"] {
        let deps = dir.path().join("deps").join(package);
        std::fs::create_dir_all(&deps).unwrap();
        let file = format!("{package}.wit");
        std::fs::copy(
            wit_dir().join("deps").join(package).join(&file),
            deps.join(&file),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("hosted.wit"),
        listing.replacen(from, "        names: list<u8>,\n", 1),
    )
    .unwrap();
    let (wit, package) = parse_dir(dir.path()).unwrap();
    let hosted = world(&wit, package, "queue-hosted");
    let found = check_queue_component(&wit, hosted, &component, built);
    assert!(
        found.iter().any(|line| line
            .starts_with("fmes:queue/listing@0.1.0#[method]folder-listing.next-batch: differs")),
        "{found:#?}"
    );
}

/// The agent plugins built with the SDK (which generates its bindings from
/// `wit/plugin.wit`) export exactly the `handler` interface and import only
/// functions `mailbox` declares, with the same signatures, plus WASI.
#[test]
fn the_built_agent_plugins_match_the_agent_plugin_world() {
    let (wit, package) = parse_wit();
    let plugin_world = world(&wit, package, "agent-plugin");
    let mut declared_imports = BTreeMap::new();
    for (key, item) in &wit.worlds[plugin_world].imports {
        describe_item(&wit, key, item, &mut declared_imports);
    }
    let declared_exports = describe_exports(&wit, plugin_world);

    for name in ["report_agent", "triage_agent"] {
        let path = PathBuf::from(env!("FMES_PLUGINS_DIR")).join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let (resolve, built) = decode_component(name, &bytes);

        assert_none(
            &format!("{name}'s exports against wit/plugin.wit"),
            &differences(&declared_exports, &describe_exports(&resolve, built)),
        );

        // A component imports only the functions it calls, so its imports
        // are a part of the world's, each with the declared signature.
        let mut imported = BTreeMap::new();
        for (key, item) in &resolve.worlds[built].imports {
            let name = resolve.name_world_key(key);
            if name.starts_with("fmes:") {
                describe_item(&resolve, key, item, &mut imported);
            }
        }
        assert!(
            imported.contains_key("fmes:queue/mailbox@0.1.0#reply")
                || imported.contains_key("fmes:queue/mailbox@0.1.0#send"),
            "{name} sends nothing? {imported:#?}"
        );
        let mismatched: Vec<String> = differences(&declared_imports, &imported)
            .into_iter()
            .filter(|line| !line.ends_with("declared in wit/ but missing from the component"))
            .collect();
        assert_none(
            &format!("{name}'s imports against wit/plugin.wit"),
            &mismatched,
        );
        // The WASI-only check sees these imports for what they are…
        assert!(
            non_wasi_imports(&resolve, built, &[])
                .contains(&"import fmes:queue/mailbox@0.1.0: not a WASI 0.2 interface".into()),
            "{name}: the mailbox import is not reported as non-WASI"
        );
        // …and finds nothing else.
        assert_none(
            &format!("{name}'s other imports"),
            &non_wasi_imports(
                &resolve,
                built,
                &["fmes:queue/mailbox@0.1.0", "fmes:queue/types@0.1.0"],
            ),
        );
    }
}
