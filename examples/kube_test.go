package examples_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// --- Kubernetes objects ----------------------------------------------------

// object is one Kubernetes object.
type object struct {
	file string
	n    node
}

func (o object) kind() string      { return str(o.n, "kind") }
func (o object) name() string      { return str(o.n, "metadata", "name") }
func (o object) namespace() string { return str(o.n, "metadata", "namespace") }
func (o object) String() string    { return fmt.Sprintf("%s %s/%s", o.file, o.kind(), o.name()) }

// cluster is a set of objects as they would be applied together.
type cluster struct {
	objects []object
	// configMaps holds the ConfigMaps by name, with the files of generated
	// ones (key -> file path).
	configMaps map[string]map[string]string
}

func (c *cluster) byKind(kind string) []object {
	var out []object
	for _, o := range c.objects {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (c *cluster) has(kind, ns, name string) bool {
	for _, o := range c.byKind(kind) {
		if o.name() == name && (ns == "" || o.namespace() == "" || o.namespace() == ns) {
			return true
		}
	}
	return false
}

// podTemplate returns the pod spec and labels of a workload.
func podTemplate(o object) (spec node, labels map[string]any) {
	switch o.kind() {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return get(o.n, "spec", "template", "spec"), mapping(o.n, "spec", "template", "metadata",
			"labels")
	case "Pod":
		return get(o.n, "spec"), mapping(o.n, "metadata", "labels")
	}
	return nil, nil
}

func matches(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// checkReferences checks the references every set of objects must satisfy.
func (c *cluster) checkReferences(p *problems) {
	for _, o := range c.objects {
		spec, labels := podTemplate(o)
		if spec == nil {
			continue
		}
		if sel := mapping(o.n, "spec", "selector", "matchLabels"); o.kind() != "Pod" &&
			!matches(sel, labels) {
			p.add("%s: selector %v does not match the pod labels %v", o, sel, labels)
		}
		c.checkPodSpec(o, spec, p)
	}
	for _, svc := range c.byKind("Service") {
		c.checkService(svc, p)
	}
}

func (c *cluster) checkPodSpec(o object, spec node, p *problems) {
	volumes := map[string]bool{}
	for _, v := range list(spec, "volumes") {
		volumes[str(v, "name")] = true
		if cm := str(v, "configMap", "name"); cm != "" && c.configMaps[cm] == nil {
			p.add("%s: volume %s uses ConfigMap %q, which is not defined", o, str(v, "name"), cm)
		}
		if claim := str(v, "persistentVolumeClaim", "claimName"); claim != "" &&
			!c.has("PersistentVolumeClaim", o.namespace(), claim) {
			p.add("%s: volume %s uses PersistentVolumeClaim %q, which is not defined",
				o, str(v, "name"), claim)
		}
	}
	for _, ctr := range slices.Concat(list(spec, "initContainers"), list(spec, "containers")) {
		for _, m := range list(ctr, "volumeMounts") {
			if !volumes[str(m, "name")] {
				p.add("%s: container %s mounts unknown volume %s", o, str(ctr, "name"), str(m, "name"))
			}
		}
		for _, e := range list(ctr, "envFrom") {
			if cm := str(e, "configMapRef", "name"); cm != "" && c.configMaps[cm] == nil &&
				str(e, "configMapRef", "optional") != "true" {
				p.add("%s: container %s reads ConfigMap %q, which is not defined",
					o, str(ctr, "name"), cm)
			}
		}
		for _, e := range list(ctr, "env") {
			ref := get(e, "valueFrom", "secretKeyRef")
			if ref != nil && str(ref, "optional") != "true" &&
				!c.has("Secret", o.namespace(), str(ref, "name")) {
				p.add("%s: container %s reads Secret %q, which is neither defined nor optional",
					o, str(ctr, "name"), str(ref, "name"))
			}
		}
	}
}

// containerPort finds a port of the selected pods by number or name.
func containerPort(spec node, target string) bool {
	for _, ctr := range list(spec, "containers") {
		for _, cp := range list(ctr, "ports") {
			if str(cp, "name") == target || str(cp, "containerPort") == target {
				return true
			}
		}
	}
	return false
}

func (c *cluster) checkService(svc object, p *problems) {
	sel := mapping(svc.n, "spec", "selector")
	var specs []node
	for _, o := range c.objects {
		spec, labels := podTemplate(o)
		if spec != nil && o.namespace() == svc.namespace() && matches(sel, labels) {
			specs = append(specs, spec)
		}
	}
	if len(specs) == 0 {
		p.add("%s: selector %v selects no workload", svc, sel)
		return
	}
	for _, port := range list(svc.n, "spec", "ports") {
		target := cmpOr(str(port, "targetPort"), str(port, "port"))
		for _, spec := range specs {
			if !containerPort(spec, target) {
				p.add("%s: port %s: targetPort %q is not a container port of the selected pods",
					svc, str(port, "name"), target)
			}
		}
	}
}

// loadObjects reads the Kubernetes objects of files.
func loadObjects(files []string, p *problems) *cluster {
	c := &cluster{configMaps: map[string]map[string]string{}}
	for _, f := range files {
		docs, err := readYAML(f)
		if err != nil {
			p.add("%v", err)
			continue
		}
		for _, d := range docs {
			o := object{file: filepath.Base(f), n: d}
			if o.kind() == "" || str(d, "apiVersion") == "" {
				p.add("%s: a document without apiVersion or kind", f)
				continue
			}
			c.objects = append(c.objects, o)
			if o.kind() == "ConfigMap" {
				c.configMaps[o.name()] = map[string]string{}
			}
		}
	}
	return c
}

// checkKubernetes follows examples/kubernetes/kustomization.yaml.
func checkKubernetes(root string) []string {
	var p problems
	dir := filepath.Join(root, "examples", "kubernetes")
	docs, err := readYAML(filepath.Join(dir, "kustomization.yaml"))
	if err != nil || len(docs) != 1 {
		p.add("examples/kubernetes/kustomization.yaml: %v", err)
		return p
	}
	k := docs[0]
	var files []string
	for _, r := range strs(k, "resources") {
		f := filepath.Join(dir, r)
		if _, err := os.Stat(f); err != nil {
			p.add("kustomization.yaml: resource %s does not exist", r)
			continue
		}
		files = append(files, f)
	}
	c := loadObjects(files, &p)
	for _, g := range list(k, "configMapGenerator") {
		keys := map[string]string{}
		for _, f := range strs(g, "files") {
			key, file, ok := strings.Cut(f, "=")
			if !ok {
				file, key = key, path.Base(key)
			}
			if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
				p.add("kustomization.yaml: configMapGenerator %s: file %s does not exist",
					str(g, "name"), file)
			}
			keys[key] = filepath.Join(dir, file)
		}
		c.configMaps[str(g, "name")] = keys
	}
	c.checkReferences(&p)
	for _, o := range c.byKind("Deployment") {
		c.checkSidecar(o, &p)
	}
	return p
}

// checkSidecar follows the Envoy sidecar of a pod: its -c file is a key of
// the ConfigMap mounted there, its listeners are container ports, and every
// cluster endpoint on the loopback address is served by a container of the
// pod (a MCP_AUTHZ_*_ADDR variable or an --addr argument).
func (c *cluster) checkSidecar(o object, p *problems) {
	spec, _ := podTemplate(o)
	var envoy node
	served := map[int]bool{}
	for _, ctr := range list(spec, "containers") {
		args := slices.Concat(strs(ctr, "command"), strs(ctr, "args"))
		if slices.Contains(args, "envoy") {
			envoy = ctr
		}
		if i := slices.Index(args, "--addr"); i >= 0 && i+1 < len(args) {
			served[portOf(args[i+1])] = true
		}
		for _, e := range list(ctr, "env") {
			if strings.HasPrefix(str(e, "name"), "MCP_AUTHZ_") &&
				strings.HasSuffix(str(e, "name"), "_ADDR") {
				served[portOf(str(e, "value"))] = true
			}
		}
	}
	if envoy == nil {
		p.add("%s: no envoy container", o)
		return
	}
	args := slices.Concat(strs(envoy, "command"), strs(envoy, "args"))
	i := slices.Index(args, "-c")
	if i < 0 || i+1 >= len(args) {
		p.add("%s: envoy has no -c argument", o)
		return
	}
	file := c.mountedFile(spec, envoy, args[i+1])
	if file == "" {
		p.add("%s: envoy's -c %s is not a file of a mounted ConfigMap", o, args[i+1])
		return
	}
	listeners, clusters, err := envoyAddrs(file)
	if err != nil {
		p.add("%s: %v", o, err)
		return
	}
	for _, l := range listeners {
		if !containerPort(spec, strconv.Itoa(l)) {
			p.add("%s: envoy listener port %d is not a container port", o, l)
		}
	}
	for name, eps := range clusters {
		for _, ep := range eps {
			if ep.host == "127.0.0.1" && !served[ep.port] {
				p.add("%s: envoy cluster %s points at %s, which no container of the pod serves",
					o, name, ep)
			}
		}
	}
}

// mountedFile returns the source file of path inside ctr, when a ConfigMap
// generated from files is mounted there.
func (c *cluster) mountedFile(spec, ctr node, file string) string {
	for _, m := range list(ctr, "volumeMounts") {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(str(m, "mountPath"), "/")+"/")
		if !ok {
			continue
		}
		for _, v := range list(spec, "volumes") {
			if str(v, "name") == str(m, "name") {
				return c.configMaps[str(v, "configMap", "name")][rel]
			}
		}
	}
	return ""
}

// --- Istio -------------------------------------------------------------------

func checkIstio(root string) []string {
	var p problems
	files, _ := filepath.Glob(filepath.Join(root, "examples", "istio", "*.yaml"))
	if len(files) == 0 {
		p.add("examples/istio: no YAML files")
		return p
	}
	c := loadObjects(files, &p)
	c.checkReferences(&p)

	providers := map[string]node{}
	for _, o := range c.byKind("IstioOperator") {
		for _, ep := range list(o.n, "spec", "meshConfig", "extensionProviders") {
			providers[str(ep, "name")] = ep
		}
	}
	policies := 0
	for _, pol := range c.byKind("AuthorizationPolicy") {
		if str(pol.n, "spec", "action") != "CUSTOM" {
			continue
		}
		policies++
		c.checkCustomPolicy(pol, providers, &p)
	}
	if policies == 0 {
		p.add("examples/istio: no AuthorizationPolicy with action CUSTOM")
	}
	c.checkVirtualServices(&p)
	return p
}

func (c *cluster) checkCustomPolicy(pol object, providers map[string]node, p *problems) {
	name := str(pol.n, "spec", "provider", "name")
	ep := providers[name]
	if ep == nil {
		p.add("%s: provider %q is not an extensionProvider of the mesh config", pol, name)
		return
	}
	grpc := get(ep, "envoyExtAuthzGrpc")
	if grpc == nil {
		p.add("%s: provider %q is not envoyExtAuthzGrpc", pol, name)
	} else if port := intOf(get(grpc, "port")); !c.servicePort(str(grpc, "service"), port, "grpc") {
		p.add("provider %s: %s port %d is not a gRPC port of a Service here",
			name, str(grpc, "service"), port)
	}
	sel := mapping(pol.n, "spec", "selector", "matchLabels")
	selected := false
	for _, o := range c.objects {
		if _, labels := podTemplate(o); o.namespace() == pol.namespace() && matches(sel, labels) {
			selected = true
		}
	}
	if !selected {
		p.add("%s: selector %v selects no workload", pol, sel)
	}
	var paths, notPaths []string
	for _, r := range list(pol.n, "spec", "rules") {
		for _, to := range list(r, "to") {
			paths = append(paths, strs(to, "operation", "paths")...)
			notPaths = append(notPaths, strs(to, "operation", "notPaths")...)
		}
	}
	if !slices.Contains(paths, "/mcp") {
		p.add("%s: paths %v do not name /mcp", pol, paths)
	}
	// notPaths name every OAuth path, so that widening paths cannot put one
	// behind the check.
	for _, op := range oauthPaths {
		switch {
		case istioPathMatch(paths, op) && !istioPathMatch(notPaths, op):
			p.add("%s: OAuth path %s would be checked", pol, op)
		case !istioPathMatch(notPaths, op):
			p.add("%s: notPaths do not exclude OAuth path %s", pol, op)
		}
	}
}

// istioPathMatch applies Istio's path patterns: exact, "prefix*", "*suffix".
func istioPathMatch(patterns []string, p string) bool {
	for _, pat := range patterns {
		switch {
		case pat == "*" || pat == p:
			return true
		case strings.HasSuffix(pat, "*") && strings.HasPrefix(p, strings.TrimSuffix(pat, "*")):
			return true
		case strings.HasPrefix(pat, "*") && strings.HasSuffix(p, strings.TrimPrefix(pat, "*")):
			return true
		}
	}
	return false
}

// servicePort reports whether host (name.namespace.svc.cluster.local) is a
// Service here with port; with proto "grpc" the port must be declared so.
func (c *cluster) servicePort(host string, port int, proto string) bool {
	name, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
	for _, svc := range c.byKind("Service") {
		if svc.name() != name || svc.namespace() != ns {
			continue
		}
		for _, sp := range list(svc.n, "spec", "ports") {
			if intOf(get(sp, "port")) != port {
				continue
			}
			if proto == "" || str(sp, "appProtocol") == proto ||
				strings.HasPrefix(str(sp, "name"), proto) {
				return true
			}
		}
	}
	return false
}

func (c *cluster) checkVirtualServices(p *problems) {
	for _, vs := range c.byKind("VirtualService") {
		for _, g := range strs(vs.n, "spec", "gateways") {
			if !c.has("Gateway", vs.namespace(), g) {
				p.add("%s: gateway %q is not defined", vs, g)
			}
		}
		routed := map[string]bool{}
		for _, h := range list(vs.n, "spec", "http") {
			for _, r := range list(h, "route") {
				host := str(r, "destination", "host")
				port := intOf(get(r, "destination", "port", "number"))
				if !c.servicePort(host, port, "") {
					p.add("%s: route %s goes to %s:%d, which is not a Service port here",
						vs, str(h, "name"), host, port)
				}
			}
			for _, m := range list(h, "match") {
				for _, op := range append(slices.Clone(oauthPaths), "/mcp") {
					if u := str(m, "uri", "exact"); u == op ||
						(str(m, "uri", "prefix") != "" && strings.HasPrefix(op, str(m, "uri", "prefix"))) {
						routed[op] = true
					}
				}
			}
		}
		for _, op := range append(slices.Clone(oauthPaths), "/mcp") {
			if !routed[op] {
				p.add("%s: %s is not routed", vs, op)
			}
		}
	}
}
