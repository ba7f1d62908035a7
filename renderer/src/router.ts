// Hash history: works from app://, file:// and `hangar serve` alike (#/, #/vm/NAME/console ...).
import { createRouter, createWebHashHistory } from 'vue-router';
import type { Router } from 'vue-router';

export function createAppRouter(): Router {
  return createRouter({
    history: createWebHashHistory(),
    routes: [
      { path: '/', name: 'list', component: () => import('./views/VmListView.vue') },
      {
        path: '/vm/:name',
        component: () => import('./views/VmDetailsView.vue'),
        props: true,
        children: [
          // The VM's first tab: its screen when it has a display, else the Overview.
          { path: '', name: 'home', props: true, component: () => import('./views/VmHomeTab.vue') },
          { path: 'overview', name: 'overview', props: true, component: () => import('./views/OverviewTab.vue') },
          { path: 'display', name: 'display', props: true, component: () => import('./views/DisplayTab.vue') },
          { path: 'console', name: 'console', props: true, component: () => import('./views/ConsoleTab.vue') },
          { path: 'terminal', name: 'terminal', props: true, component: () => import('./views/TerminalTab.vue') },
          { path: 'devices', name: 'devices', props: true, component: () => import('./views/DevicesTab.vue') },
          { path: 'snapshots', name: 'snapshots', props: true, component: () => import('./views/SnapshotsTab.vue') },
          { path: 'performance', name: 'performance', props: true, component: () => import('./views/PerformanceTab.vue') },
        ],
      },
      { path: '/new', name: 'new', component: () => import('./views/NewVmView.vue') },
      { path: '/host', name: 'host', component: () => import('./views/HostView.vue') },
      { path: '/about', name: 'about', component: () => import('./views/AboutView.vue') },
      { path: '/:rest(.*)*', redirect: '/' },
    ],
  });
}
