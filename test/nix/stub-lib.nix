# A minimal, honest stand-in for the parts of nixpkgs' `lib` (and its module system) that
# nix/module.nix and nix/package.nix use. There is no nixpkgs on the test machines, so the
# module is evaluated by real Nix against this file (test/nix/module.test.ts).
#
# What it models, with nixpkgs' semantics:
# - mkOption / mkEnableOption; options with `default` (a definition of priority 1500, as
#   mkOptionDefault), `readOnly` (more than one definition is an error — as in nixpkgs, a
#   single definition still overrides the default), typed merging;
# - mkIf / mkMerge / mkOverride (mkDefault, mkForce) at any depth, with mkIf pushed down
#   into attribute sets so a module's own options can be read while its `config` is built;
# - defining an option that nobody declared is an error ("The option `…' does not exist"),
#   so every NixOS option the module sets must be declared by ./stub-nixos.nix;
# - types: str bool int ints.positive port path package raw enum nullOr listOf attrsOf
#   submodule (with `name`) and the JSON value type of pkgs.formats.json.
# What it does not model: imports, disabledModules, freeformType, option `apply`,
# mkBefore/mkAfter ordering, type descriptions, documentation rendering.
let
  inherit (builtins)
    all any attrNames concatLists concatMap elem filter foldl' genList head isAttrs
    isBool isFunction isInt isList isPath isString length listToAttrs mapAttrs tail
    ;

  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
  showPath = path: builtins.concatStringsSep "." path;
  hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
  minList = xs: foldl' (a: b: if b < a then b else a) (head xs) (tail xs);

  # ---- properties -------------------------------------------------------------------
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };

  # Definitions of an attribute set, with properties moved inside its attributes, without
  # evaluating any mkIf condition (as lib.modules.pushDownProperties).
  pushDown = path: def:
    let t = def._type or null; in
    if t == "if" then mapAttrs (_: v: mkIf def.condition v) (pushDown path def.content)
    else if t == "override" then mapAttrs (_: v: mkOverride def.priority v) (pushDown path def.content)
    else if t == "merge" then
      let ps = map (pushDown path) def.contents;
      in genAttrs (unique (concatMap attrNames ps)) (n: mkMerge (concatMap (p: if p ? ${n} then [ p.${n} ] else [ ]) ps))
    else if isAttrs def then def
    else throw "stub-lib: `${showPath path}' is an attribute set of options, but is defined as a ${builtins.typeOf def}";

  # Plain definitions with their priority (evaluates mkIf conditions; as dischargeProperties).
  discharge = prio: def:
    let t = def._type or null; in
    if t == "if" then (if def.condition then discharge prio def.content else [ ])
    else if t == "merge" then concatMap (discharge prio) def.contents
    else if t == "override" then discharge def.priority def.content
    else [ { value = def; priority = prio; } ];

  # ---- options ----------------------------------------------------------------------
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption { type = types.bool; default = false; description = "Whether to enable ${name}."; };
  isOption = x: isAttrs x && (x._type or null) == "option";

  evalOption = path: opt: defs:
    let
      given = concatMap (discharge 100) defs;
      all' = given ++ (if opt ? default then [ { value = opt.default; priority = 1500; } ] else [ ]);
      best = if all' == [ ] then null else minList (map (d: d.priority) all');
      kept = filter (d: d.priority == best) all';
    in
    if all' == [ ] then throw "stub-lib: The option `${showPath path}' is used but not defined."
    else if (opt.readOnly or false) && length given > 1 then throw "stub-lib: The option `${showPath path}' is read-only, but it is set multiple times."
    else opt.type.merge path (map (d: d.value) kept);

  # An attribute set of option declarations, given the definitions made for it.
  evalOptionSet = path: decls: defs:
    let
      pushed = map (pushDown path) defs;
      defined = unique (concatMap attrNames pushed);
      undeclared = filter (n: !(decls ? ${n})) defined;
      defsOf = n: concatMap (p: if p ? ${n} then [ p.${n} ] else [ ]) pushed;
    in
    if undeclared != [ ] then
      throw "stub-lib: The option `${showPath (path ++ [ (head undeclared) ])}' does not exist."
    else
      mapAttrs (n: d: if isOption d then evalOption (path ++ [ n ]) d (defsOf n) else evalOptionSet (path ++ [ n ]) d (defsOf n)) decls;

  mergeDecls = path: a: b:
    a // mapAttrs (n: vb:
      if !(a ? ${n}) then vb
      else if isOption vb || isOption a.${n} then throw "stub-lib: The option `${showPath (path ++ [ n ])}' is declared twice."
      else mergeDecls (path ++ [ n ]) a.${n} vb) b;

  # evalModules { modules; specialArgs } -> { config, options }.
  evalModules = { modules, specialArgs ? { }, prefix ? [ ] }:
    let
      args = specialArgs // { inherit lib config options; };
      load = m:
        let
          m' = if isPath m || isString m then import m else m;
          v = if isFunction m' then m' args else m';
        in
        if v ? imports then throw "stub-lib: imports are not modelled"
        else if v ? options || v ? config then { options = v.options or { }; config = v.config or { }; }
        else { options = { }; config = v; };
      loaded = map load modules;
      options = foldl' (mergeDecls prefix) { } (map (m: m.options) loaded);
      config = evalOptionSet prefix options (map (m: m.config) loaded);
    in
    { inherit config options; };

  # ---- types ------------------------------------------------------------------------
  checked = path: tname: check: v:
    if check v then v
    else throw "stub-lib: A definition for option `${showPath path}' is not of type `${tname}': ${builtins.toJSON (if isFunction v then "<function>" else v)}";

  mergeEqual = path: vs:
    if all (v: v == head vs) vs then head vs
    else throw "stub-lib: The option `${showPath path}' has conflicting definition values.";

  scalar = name: check: {
    inherit name check;
    merge = path: vs: mergeEqual path (map (checked path name check) vs);
  };

  isDerivationLike = v: isAttrs v && ((v.type or null) == "derivation" || v ? outPath);

  # The value type of pkgs.formats.json: JSON data; attribute sets merge recursively and
  # lists concatenate (as nixpkgs' formats.json's type does).
  isJson = v: v == null || isBool v || isInt v || builtins.isFloat v || isString v || isPath v
    || (isList v && all isJson v) || (isAttrs v && !(v ? _type) && all isJson (builtins.attrValues v));
  jsonType = {
    name = "JSON value";
    check = isJson;
    merge = path: vs:
      let vs' = map (checked path "JSON value" isJson) vs; in
      if all isAttrs vs' then
        genAttrs (unique (concatMap attrNames vs')) (n: jsonType.merge (path ++ [ n ]) (concatMap (v: if v ? ${n} then [ v.${n} ] else [ ]) vs'))
      else if all isList vs' then concatLists vs'
      else mergeEqual path vs';
  };

  types = rec {
    str = scalar "string" isString;
    bool = scalar "boolean" isBool;
    int = scalar "signed integer" isInt;
    ints.positive = scalar "positive integer" (v: isInt v && v > 0);
    port = scalar "16 bit unsigned integer" (v: isInt v && v >= 0 && v <= 65535);
    path = scalar "path" (v: isPath v || (isString v && hasPrefix "/" v) || (isDerivationLike v));
    package = scalar "package" isDerivationLike;
    raw = {
      name = "raw value";
      check = _: true;
      merge = path: vs: if length vs == 1 then head vs else throw "stub-lib: The option `${showPath path}' (raw) is defined multiple times.";
    };
    enum = values: scalar "one of ${builtins.toJSON values}" (v: elem v values);
    nullOr = t: {
      name = "null or ${t.name}";
      check = v: v == null || t.check v;
      merge = path: vs:
        if all (v: v == null) vs then null
        else if any (v: v == null) vs then throw "stub-lib: The option `${showPath path}' is defined both null and not null."
        else t.merge path vs;
    };
    listOf = t: {
      name = "list of ${t.name}";
      check = isList;
      merge = path: vs:
        let ls = map (checked path "list of ${t.name}" isList) vs;
        in genList (i: t.merge (path ++ [ "[${toString i}]" ]) [ (builtins.elemAt (concatLists ls) i) ]) (length (concatLists ls));
    };
    attrsOf = t: {
      name = "attribute set of ${t.name}";
      check = isAttrs;
      merge = path: vs:
        let
          pushed = map (pushDown path) vs;
          defsOf = n: concatMap (p: if p ? ${n} then concatMap (discharge 100) [ p.${n} ] else [ ]) pushed;
          # As nixpkgs: an attribute whose definitions all vanish (`mkIf false`) does not exist.
          names = filter (n: defsOf n != [ ]) (unique (concatMap attrNames pushed));
        in
        genAttrs names (n: t.merge (path ++ [ n ]) (map (d: d.value) (defsOf n)));
    };
    submodule = m: {
      name = "submodule";
      check = v: isAttrs v || isFunction v;
      merge = path: vs:
        (evalModules {
          modules = [ m ] ++ vs;
          prefix = path;
          specialArgs = { name = builtins.elemAt path (length path - 1); };
        }).config;
    };
  };

  # ---- the few plain functions the module and package use -----------------------------
  lib = {
    inherit mkOption mkEnableOption mkIf mkMerge mkOverride evalModules types hasPrefix;
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    jsonType = jsonType;
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: a: if c then a else { };
    mapAttrs = builtins.mapAttrs;
    concatStringsSep = builtins.concatStringsSep;
    replaceStrings = builtins.replaceStrings;
    hasInfix = infix: s: builtins.match ".*${lib.escapeRegex infix}.*" s != null;
    escapeRegex = builtins.replaceStrings
      [ "\\" "[" "]" "{" "}" "(" ")" "^" "$" "." "*" "+" "?" "|" ]
      [ "\\\\" "\\[" "\\]" "\\{" "\\}" "\\(" "\\)" "\\^" "\\$" "\\." "\\*" "\\+" "\\?" "\\|" ];
    removePrefix = p: s: if hasPrefix p s then builtins.substring (builtins.stringLength p) (-1) s else s;
    any = builtins.any;
    importJSON = file: builtins.fromJSON (builtins.readFile file);
    recursiveUpdate = lhs: rhs:
      lhs // mapAttrs (n: v: if isAttrs v && isAttrs (lhs.${n} or null) then lib.recursiveUpdate lhs.${n} v else v) rhs;
    # Records its arguments instead of copying a filtered tree (the tests call the filter).
    cleanSourceWith = args: { outPath = toString args.src; inherit (args) filter; name = args.name or "source"; };
    licenses.mit = { spdxId = "MIT"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };
in
lib
